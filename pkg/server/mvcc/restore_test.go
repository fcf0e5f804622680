package mvcc

import (
	"os"
	"path/filepath"
	"testing"
)

// A member installing a leader's snapshot ends up with exactly the
// leader's keys, revisions and consistent index, and nothing of its own.
func TestRestoreFromAnotherDatabase(t *testing.T) {
	dir := t.TempDir()
	leader := openStore(t, filepath.Join(dir, "leader"))
	leader.put(t, "a", "1")
	leader.put(t, "b", "1")
	leader.put(t, "a", "2")
	leader.be.ForceCommit()
	snap := filepath.Join(dir, "snap.db")
	f, err := os.Create(snap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.be.Snapshot(f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	follower := openStore(t, filepath.Join(dir, "follower"))
	follower.put(t, "stale", "x")
	if err := follower.Restore(func() error { return follower.be.Replace(snap) }); err != nil {
		t.Fatal(err)
	}
	all, err := follower.Range([]byte("\x00"), []byte("\x00"), RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(all), "a=2@2/4/v2 b=1@3/3/v1"; got != want {
		t.Fatalf("after restore: %s, want %s", got, want)
	}
	if ci, _ := follower.ConsistentIndex(); ci != 3 || follower.Rev() != 4 {
		t.Fatalf("after restore: consistent index %d rev %d, want 3 and 4", ci, follower.Rev())
	}
	// The restored store keeps taking writes.
	follower.index = 3
	follower.put(t, "c", "1")
	if follower.Rev() != 5 {
		t.Fatalf("write after restore at rev %d, want 5", follower.Rev())
	}
}

// Two stores that applied the same writes hash the same, whether or not
// one of them has physically removed compacted rows yet.
func TestHashAgreesAcrossCompaction(t *testing.T) {
	dir := t.TempDir()
	a := openStore(t, filepath.Join(dir, "a"))
	b := openStore(t, filepath.Join(dir, "b"))
	for _, s := range []*testStore{a, b} {
		s.put(t, "k1", "v1")
		s.put(t, "k2", "v1")
		s.put(t, "k1", "v2")
		s.del(t, "k2", "")
	}
	ha, _, _, err := a.Hash(0)
	if err != nil {
		t.Fatal(err)
	}
	if hb, _, _, _ := b.Hash(0); ha != hb {
		t.Fatalf("same history, hashes %x and %x", ha, hb)
	}
	var done <-chan struct{}
	a.write(t, func(w *TxnWrite) { done, _ = w.Compact(4) })
	<-done
	// b's physical compaction may still be running: rows at or below 4
	// outside the kept set must not count while they linger.
	b.write(t, func(w *TxnWrite) { _, _ = w.Compact(4) })
	ha, rev, compact, _ := a.Hash(0)
	hb, _, _, _ := b.Hash(0)
	if ha != hb || rev != 5 || compact != 4 {
		t.Fatalf("after compaction: hashes %x and %x at rev %d compact %d", ha, hb, rev, compact)
	}
	b.put(t, "k3", "v1")
	if hb2, _, _, _ := b.Hash(0); hb2 == hb {
		t.Fatal("a new write left the hash unchanged")
	}
	if _, _, _, err := a.Hash(3); err != ErrCompacted {
		t.Fatalf("hash below compaction: %v, want ErrCompacted", err)
	}
	if _, _, _, err := a.Hash(99); err != ErrFutureRev {
		t.Fatalf("hash of a future revision: %v, want ErrFutureRev", err)
	}
}
