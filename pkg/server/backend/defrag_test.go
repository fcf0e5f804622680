package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fill writes n keys with values of size bytes, committing as it goes.
func fill(t *testing.T, b *Backend, n, size int) map[string][]byte {
	t.Helper()
	model := make(map[string][]byte, n)
	for i := range n {
		k, v := fmt.Sprintf("k%07d", i), bytes.Repeat([]byte{byte(i)}, size)
		if err := b.Write(func(tx WriteTx) error { return tx.Put(Key, []byte(k), v) }); err != nil {
			t.Fatal(err)
		}
		model[k] = v
	}
	b.ForceCommit()
	return model
}

// contents reads the whole key bucket through the live batch transaction.
func contents(b *Backend) map[string][]byte {
	got := map[string][]byte{}
	b.Read(func(tx ReadTx) {
		tx.ForEach(Key, nil, func(k, v []byte) bool {
			got[string(k)] = bytes.Clone(v)
			return true
		})
	})
	return got
}

func sameContents(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("key %s = %.20q, want %.20q", k, got[k], v)
		}
	}
}

// TestDefragUnderWritesAndDeletes runs a defrag while a writer puts and
// deletes and readers read; afterwards, and after a reopen, the database
// equals the writer's model. A snapshot opened before the defrag stays
// readable after the swap.
func TestDefragUnderWritesAndDeletes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	b := open(t, path, 5*time.Millisecond, 100)
	model := fill(t, b, 20000, 200)
	snap, err := b.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex // guards model against the final comparison only
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	rng := rand.New(rand.NewPCG(1, 2))
	repeat(&wg, stop, func() bool {
		k := fmt.Sprintf("k%07d", rng.IntN(30000))
		del := rng.IntN(3) == 0
		v := []byte(fmt.Sprintf("w%d", writes.Load()))
		err := b.Write(func(tx WriteTx) error {
			if del {
				return tx.Delete(Key, []byte(k))
			}
			return tx.Put(Key, []byte(k), v)
		})
		if err != nil {
			t.Error(err)
			return false
		}
		mu.Lock()
		if del {
			delete(model, k)
		} else {
			model[k] = v
		}
		mu.Unlock()
		writes.Add(1)
		return true
	})
	for range 2 {
		repeat(&wg, stop, func() bool {
			b.Read(func(tx ReadTx) { tx.ForEach(Key, []byte("k0010000"), func(_, _ []byte) bool { return false }) })
			return true
		})
	}

	st, err := b.Defrag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Keep writing into the new file for a while.
	for n := writes.Load(); writes.Load() < n+500; {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("defrag: %+v; %d writes in all", st, writes.Load())
	if st.Replayed == 0 {
		t.Fatal("no write landed during the defrag; the test did not exercise catch-up")
	}
	sameContents(t, contents(b), model)

	// The snapshot still reads the old file's state.
	if v := snap.Get(Key, []byte("k0000007")); !bytes.Equal(v, bytes.Repeat([]byte{7}, 200)) {
		t.Fatalf("snapshot after swap read %.20q", v)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, path, time.Hour, 1000)
	defer b.Close()
	sameContents(t, contents(b), model)
}

// TestDefragShrinksFile deletes most keys, then checks the file on disk
// got smaller and every remaining key survived.
func TestDefragShrinksFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	b := open(t, path, time.Hour, 1000)
	defer b.Close()
	model := fill(t, b, 20000, 500)
	for i := range 20000 {
		if i%10 == 0 {
			continue
		}
		k := fmt.Sprintf("k%07d", i)
		if err := b.Write(func(tx WriteTx) error { return tx.Delete(Key, []byte(k)) }); err != nil {
			t.Fatal(err)
		}
		delete(model, k)
	}
	b.ForceCommit()
	before := fileSize(t, path)
	st, err := b.Defrag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after := fileSize(t, path)
	t.Logf("file %d -> %d bytes; stats %+v", before, after, st)
	if after >= before/2 {
		t.Fatalf("file %d bytes after defrag, was %d", after, before)
	}
	if st.SizeAfter >= st.SizeBefore {
		t.Fatalf("stats say %d -> %d", st.SizeBefore, st.SizeAfter)
	}
	sameContents(t, contents(b), model)
	if _, err := os.Stat(path + defragSuffix); !os.IsNotExist(err) {
		t.Fatalf("defrag file left behind: %v", err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestOpenRemovesDefragLeftover: a half-written copy from a crashed defrag
// is not the database; open deletes it and keeps the real file.
func TestOpenRemovesDefragLeftover(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	b := open(t, path, time.Hour, 1000)
	model := fill(t, b, 100, 10)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+defragSuffix, []byte("half a bbolt file"), 0o600); err != nil {
		t.Fatal(err)
	}
	b = open(t, path, time.Hour, 1000)
	defer b.Close()
	if _, err := os.Stat(path + defragSuffix); !os.IsNotExist(err) {
		t.Fatalf("leftover still there: %v", err)
	}
	sameContents(t, contents(b), model)
	if _, err := b.Defrag(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameContents(t, contents(b), model)
}

// TestReplaceAbortsDefrag: a database replaced while a defrag copies it
// (a raft snapshot installed) must not be swapped back by the defrag.
// The replace lands between the copy's first two chunks.
func TestReplaceAbortsDefrag(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	b := open(t, path, time.Hour, 1000)
	defer b.Close()
	fill(t, b, 20000, 500)

	other := open(t, filepath.Join(dir, "other"), time.Hour, 1000)
	want := fill(t, other, 10, 1)
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	copying, replaced := make(chan struct{}), make(chan struct{})
	var once sync.Once
	b.afterChunk = func() {
		once.Do(func() {
			close(copying)
			<-replaced
		})
	}
	errc := make(chan error, 1)
	go func() {
		_, err := b.Defrag(context.Background())
		errc <- err
	}()
	<-copying
	if err := b.Replace(filepath.Join(dir, "other")); err != nil {
		t.Fatal(err)
	}
	close(replaced)
	if err := <-errc; !errors.Is(err, ErrDefragAborted) {
		t.Fatalf("defrag of a replaced database returned %v", err)
	}
	sameContents(t, contents(b), want)
}
