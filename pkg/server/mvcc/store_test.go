package mvcc

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

type testStore struct {
	*Store
	be    *backend.Backend
	path  string
	index uint64
}

func openStore(t testing.TB, path string) *testStore {
	t.Helper()
	be, err := backend.Open(backend.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(be, nil)
	if err != nil {
		t.Fatal(err)
	}
	ci, _ := s.ConsistentIndex()
	ts := &testStore{Store: s, be: be, path: path, index: ci}
	t.Cleanup(func() { ts.close() })
	return ts
}

func (ts *testStore) close() {
	if ts.be != nil {
		ts.Store.Close()
		ts.be.Close()
		ts.be = nil
	}
}

func (ts *testStore) write(t testing.TB, fn func(*TxnWrite)) {
	t.Helper()
	ts.index++
	if err := ts.Write(ts.index, 1, func(w *TxnWrite) error { fn(w); return nil }); err != nil {
		t.Fatal(err)
	}
}

func (ts *testStore) put(t testing.TB, k, v string) {
	ts.write(t, func(w *TxnWrite) { w.Put([]byte(k), []byte(v), 0) })
}

func (ts *testStore) del(t testing.TB, k, end string) {
	var e []byte
	if end != "" {
		e = []byte(end)
	}
	ts.write(t, func(w *TxnWrite) { w.DeleteRange([]byte(k), e) })
}

func keysOf(r *RangeResult) string {
	var ks []string
	for _, kv := range r.KVs {
		ks = append(ks, fmt.Sprintf("%s=%s@%d/%d/v%d", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version))
	}
	return strings.Join(ks, " ")
}

func TestRevisionsAndVersions(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "db"))
	s.put(t, "a", "1")                                                                                       // rev 2
	s.put(t, "b", "1")                                                                                       // rev 3
	s.put(t, "a", "2")                                                                                       // rev 4
	s.del(t, "a", "")                                                                                        // rev 5
	s.put(t, "a", "3")                                                                                       // rev 6
	s.del(t, "zz", "")                                                                                       // nothing to delete: no new revision
	s.write(t, func(w *TxnWrite) { w.Put([]byte("c"), []byte("1"), 7); w.Put([]byte("d"), []byte("1"), 0) }) // rev 7
	tests := []struct {
		key, end string
		opts     RangeOptions
		want     string
		count    int64
	}{
		{"a", "", RangeOptions{}, "a=3@6/6/v1", 1},
		{"a", "", RangeOptions{Rev: 4}, "a=2@2/4/v2", 1},
		{"a", "", RangeOptions{Rev: 5}, "", 0},
		{"a", "c", RangeOptions{}, "a=3@6/6/v1 b=1@3/3/v1", 2},
		{"b", "\x00", RangeOptions{}, "b=1@3/3/v1 c=1@7/7/v1 d=1@7/7/v1", 3},
		{"a", "\x00", RangeOptions{Limit: 2}, "a=3@6/6/v1 b=1@3/3/v1", 4},
		{"a", "\x00", RangeOptions{Limit: 2, Paged: true}, "a=3@6/6/v1 b=1@3/3/v1", 2},
		{"a", "\x00", RangeOptions{Limit: 9, Paged: true}, "a=3@6/6/v1 b=1@3/3/v1 c=1@7/7/v1 d=1@7/7/v1", 4},
		{"a", "\x00", RangeOptions{Count: true}, "", 4},
		{"\x00", "\x00", RangeOptions{Rev: 3}, "a=1@2/2/v1 b=1@3/3/v1", 2},
	}
	for _, tt := range tests {
		r, err := s.Range([]byte(tt.key), endOf(tt.end), tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := keysOf(r); got != tt.want || r.Count != tt.count || r.Rev != 7 {
			t.Errorf("range %q-%q %+v = %q count %d rev %d; want %q count %d rev 7", tt.key, tt.end, tt.opts, got, r.Count, r.Rev, tt.want, tt.count)
		}
	}
	r, _ := s.Range([]byte("c"), nil, RangeOptions{})
	if r.KVs[0].Lease != 7 {
		t.Errorf("lease not stored with the key: %d", r.KVs[0].Lease)
	}
	if _, err := s.Range([]byte("a"), nil, RangeOptions{Rev: 8}); !errors.Is(err, ErrFutureRev) {
		t.Errorf("future rev: %v", err)
	}
}

func endOf(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func TestCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openStore(t, path)
	for i := range 5 {
		s.put(t, "k", fmt.Sprint(i)) // revs 2..6
	}
	s.put(t, "gone", "x") // 7
	s.del(t, "gone", "")  // 8
	rows := func() int {
		n := 0
		s.be.Read(func(tx backend.ReadTx) { tx.ForEach(backend.Key, nil, func(_, _ []byte) bool { n++; return true }) })
		return n
	}
	if n := rows(); n != 7 {
		t.Fatalf("%d rows before compaction, want 7", n)
	}
	var done <-chan struct{}
	s.write(t, func(w *TxnWrite) {
		var err error
		if done, err = w.Compact(5); err != nil {
			t.Fatal(err)
		}
	})
	<-done
	// Kept: k@5 (visible at 5), k@6, gone@7, gone tombstone@8.
	if n := rows(); n != 4 {
		t.Fatalf("%d rows after compaction, want 4", n)
	}
	if _, err := s.Range([]byte("k"), nil, RangeOptions{Rev: 4}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("read below compaction: %v", err)
	}
	if r, _ := s.Range([]byte("k"), nil, RangeOptions{Rev: 5}); keysOf(r) != "k=3@2/5/v4" {
		t.Fatalf("read at compaction revision: %s", keysOf(r))
	}
	s.write(t, func(w *TxnWrite) {
		if _, err := w.Compact(5); !errors.Is(err, ErrCompacted) {
			t.Errorf("compact again: %v", err)
		}
		if _, err := w.Compact(100); !errors.Is(err, ErrFutureRev) {
			t.Errorf("compact future: %v", err)
		}
	})
	s.write(t, func(w *TxnWrite) {
		d, err := w.Compact(8)
		if err != nil {
			t.Fatal(err)
		}
		done = d
	})
	<-done
	if n := rows(); n != 1 {
		t.Fatalf("%d rows after compacting away the deleted key, want 1", n)
	}
	s.close()
	s = openStore(t, path)
	if s.CompactRev() != 8 || s.Rev() != 8 {
		t.Fatalf("after reopen: compact rev %d rev %d", s.CompactRev(), s.Rev())
	}
	if r, _ := s.Range([]byte("\x00"), []byte("\x00"), RangeOptions{}); keysOf(r) != "k=4@2/6/v5" {
		t.Fatalf("after reopen: %s", keysOf(r))
	}
	// The index rebuilt from what compaction left must still know when
	// k was created and its version, for the next write to continue them.
	s.put(t, "k", "5")
	if r, _ := s.Range([]byte("k"), nil, RangeOptions{}); keysOf(r) != "k=5@2/9/v6" {
		t.Fatalf("write after reopen: %s", keysOf(r))
	}
}

func TestReopenRebuildsIndexAndConsistentIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openStore(t, path)
	s.put(t, "a", "1")
	s.put(t, "b", "1")
	s.del(t, "a", "")
	s.put(t, "a", "2")
	before, _ := s.Range([]byte("\x00"), []byte("\x00"), RangeOptions{Rev: 3})
	s.close()
	s = openStore(t, path)
	if ci, _ := s.ConsistentIndex(); ci != 4 {
		t.Fatalf("consistent index %d after reopen, want 4", ci)
	}
	after, _ := s.Range([]byte("\x00"), []byte("\x00"), RangeOptions{Rev: 3})
	if keysOf(before) != keysOf(after) || s.Rev() != 5 {
		t.Fatalf("history differs after reopen: %s vs %s, rev %d", keysOf(before), keysOf(after), s.Rev())
	}
	cur, _ := s.Range([]byte("a"), nil, RangeOptions{})
	if keysOf(cur) != "a=2@5/5/v1" {
		t.Fatalf("recreated key after reopen: %s", keysOf(cur))
	}
}

func TestTxnSeesItsOwnWrites(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "db"))
	s.write(t, func(w *TxnWrite) {
		w.Put([]byte("a"), []byte("1"), 0)
		w.Put([]byte("b"), []byte("1"), 0)
		r, err := w.Range([]byte("a"), []byte("z"), RangeOptions{})
		if err != nil || keysOf(r) != "a=1@2/2/v1 b=1@2/2/v1" {
			t.Fatalf("inside txn: %s %v", keysOf(r), err)
		}
		prev := w.DeleteRange([]byte("a"), nil)
		if len(prev) != 1 || w.Rev() != 2 {
			t.Fatalf("delete inside txn: %d prev, rev %d", len(prev), w.Rev())
		}
	})
	if s.Rev() != 2 {
		t.Fatalf("one txn made rev %d, want 2", s.Rev())
	}
}

func BenchmarkPut(b *testing.B) {
	s := openStore(b, filepath.Join(b.TempDir(), "db"))
	val := []byte(strings.Repeat("v", 256))
	i := 0
	for b.Loop() {
		i++
		s.write(b, func(w *TxnWrite) { w.Put(fmt.Appendf(nil, "key-%d", i%10000), val, 0) })
	}
}

func BenchmarkRange(b *testing.B) {
	s := openStore(b, filepath.Join(b.TempDir(), "db"))
	for i := range 1000 {
		s.put(b, fmt.Sprintf("key-%04d", i), "v")
	}
	for b.Loop() {
		if _, err := s.Range([]byte("key-0500"), nil, RangeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
