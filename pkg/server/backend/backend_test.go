package backend

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func open(t *testing.T, path string, interval time.Duration, limit int) *Backend {
	t.Helper()
	b, err := Open(Config{Path: path, BatchInterval: interval, BatchLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// committed reads what a second bbolt handle would see: only committed data.
func committed(t *testing.T, b *Backend, key string) bool {
	t.Helper()
	found := false
	err := b.db.View(func(tx *bolt.Tx) error {
		// The bucket itself is created by the first, uncommitted batch.
		bk := tx.Bucket(Key)
		found = bk != nil && bk.Get([]byte(key)) != nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func put(t *testing.T, b *Backend, k string) {
	t.Helper()
	if err := b.Write(func(tx WriteTx) error { return tx.Put(Key, []byte(k), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
}

func TestBatching(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		limit    int
		writes   int
		wait     time.Duration
		want     bool
	}{
		{"below limit, before interval", time.Hour, 10, 3, 0, false},
		{"limit reached", time.Hour, 3, 3, 0, true},
		{"interval passed", 20 * time.Millisecond, 1000, 1, 200 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := open(t, filepath.Join(t.TempDir(), "db"), tt.interval, tt.limit)
			defer b.Close()
			for i := range tt.writes {
				put(t, b, fmt.Sprint(i))
			}
			time.Sleep(tt.wait)
			if got := committed(t, b, "0"); got != tt.want {
				t.Fatalf("committed = %v, want %v", got, tt.want)
			}
			// Readers see the write either way, without a commit.
			var v []byte
			b.Read(func(tx ReadTx) { v = tx.Get(Key, []byte("0")) })
			if string(v) != "v" {
				t.Fatalf("reader saw %q", v)
			}
		})
	}
}

func TestCloseCommitsAndReopenKeeps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	b := open(t, path, time.Hour, 1000)
	put(t, b, "kept")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, path, time.Hour, 1000)
	defer b.Close()
	var v []byte
	b.Read(func(tx ReadTx) { v = tx.Get(Key, []byte("kept")) })
	if string(v) != "v" {
		t.Fatalf("after reopen: %q", v)
	}
}

// TestConcurrentReadersAndWriter is meant for -race: readers share the
// batch transaction while a writer and the commit timer change it.
func TestConcurrentReadersAndWriter(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "db"), time.Millisecond, 50)
	defer b.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		repeat(&wg, stop, func() bool {
			b.Read(func(tx ReadTx) {
				tx.Get(Key, []byte("k1"))
				tx.ForEach(Key, nil, func(_, _ []byte) bool { return true })
			})
			return true
		})
	}
	for i := range 500 {
		put(t, b, fmt.Sprintf("k%d", i))
	}
	close(stop)
	wg.Wait()
	b.ForceCommit()
	if !committed(t, b, "k499") {
		t.Fatal("last write not committed after ForceCommit")
	}
}

// repeat calls f in a goroutine of wg's, again and again until stop is
// closed or f returns false.
func repeat(wg *sync.WaitGroup, stop <-chan struct{}, f func() bool) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !f() {
				return
			}
		}
	}()
}

// Keys appended in order fill the key bucket's pages to about 90%, as
// etcd's do, where bbolt's default split leaves them half empty.
func TestKeyBucketPagesFillUp(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "db"), time.Hour, 100000)
	defer b.Close()
	v := bytes.Repeat([]byte("v"), 100)
	for i := range 20000 {
		k := binary.BigEndian.AppendUint64(nil, uint64(i))
		if err := b.Write(func(tx WriteTx) error { return tx.Put(Key, k, v) }); err != nil {
			t.Fatal(err)
		}
	}
	b.ForceCommit()
	var st bolt.BucketStats
	if err := b.db.View(func(tx *bolt.Tx) error { st = tx.Bucket(Key).Stats(); return nil }); err != nil {
		t.Fatal(err)
	}
	if fill := float64(st.LeafInuse) / float64(st.LeafAlloc); fill < 0.8 {
		t.Fatalf("leaf pages %.0f%% full (%d of %d bytes), want at least 80%%", 100*fill, st.LeafInuse, st.LeafAlloc)
	}
}
