package wal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func entry(i, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: &i, Term: &term, Data: []byte(data)}
}

func hardState(term, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: &term, Commit: &commit}
}

func smallSegments(t *testing.T, size int64) {
	old := SegmentSize
	SegmentSize = size
	t.Cleanup(func() { SegmentSize = old })
}

// writeLog creates a WAL with n entries saved in batches of batch.
func writeLog(t *testing.T, dir string, n, batch int) {
	t.Helper()
	w, err := Create(dir, []byte("meta"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i += batch {
		var ents []*raftpb.Entry
		for j := i; j < i+batch && j <= n; j++ {
			ents = append(ents, entry(uint64(j), 1, strings.Repeat("x", 100)))
		}
		if err := w.Save(hardState(1, uint64(i)), ents); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func readLog(t *testing.T, dir string, snap Snapshot) ([]byte, *raftpb.HardState, []*raftpb.Entry, error) {
	t.Helper()
	w, err := Open(dir, snap, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	defer w.Close()
	return w.ReadAll()
}

func TestRoundTripAcrossSegments(t *testing.T) {
	for _, tc := range []struct {
		name    string
		segSize int64
		n       int
	}{
		{"one segment", 1 << 20, 50},
		{"many segments", 4096, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			smallSegments(t, tc.segSize)
			dir := filepath.Join(t.TempDir(), "wal")
			writeLog(t, dir, tc.n, 7)
			meta, hs, ents, err := readLog(t, dir, Snapshot{})
			if err != nil {
				t.Fatal(err)
			}
			if string(meta) != "meta" || len(ents) != tc.n || ents[tc.n-1].GetIndex() != uint64(tc.n) {
				t.Fatalf("meta %q, %d entries", meta, len(ents))
			}
			if want := uint64((tc.n-1)/7*7 + 1); hs.GetCommit() != want {
				t.Fatalf("hard state commit %d, want %d", hs.GetCommit(), want)
			}
		})
	}
}

func TestLaterEntryReplacesTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	w, err := Create(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	must(t, w.Save(hardState(1, 0), []*raftpb.Entry{entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")}))
	must(t, w.Save(hardState(2, 1), []*raftpb.Entry{entry(2, 2, "B")}))
	w.Close()
	_, _, ents, err := readLog(t, dir, Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 || string(ents[1].Data) != "B" || ents[1].GetTerm() != 2 {
		t.Fatalf("entries after rewrite: %v", ents)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func lastSegment(t *testing.T, dir string) string {
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		t.Fatal(err)
	}
	return segs[len(segs)-1].path
}

// writtenEnd is the offset where the zero-filled part of a segment starts.
func writtenEnd(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for {
		_, next, end, err := decodeRecord(b, off)
		if end || err != nil {
			return off
		}
		off = next
	}
}

func TestTornTailIsRepaired(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte, end int)
	}{
		{"half-written last record", func(b []byte, end int) {
			for i := end - 60; i < end; i++ {
				b[i] = 0
			}
		}},
		{"garbage after the last record", func(b []byte, end int) { copy(b[end:], "\x00\x00\x01\x00garbage") }},
		{"flipped byte in the last record", func(b []byte, end int) { b[end-3] ^= 0xff }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "wal")
			writeLog(t, dir, 10, 1)
			path := lastSegment(t, dir)
			b, _ := os.ReadFile(path)
			tc.damage(b, writtenEnd(t, path))
			must(t, os.WriteFile(path, b, 0o600))

			w, err := Open(dir, Snapshot{}, nil)
			must(t, err)
			_, _, ents, err := w.ReadAll()
			must(t, err)
			if n := len(ents); n < 9 || n > 10 {
				t.Fatalf("%d entries survive, want the 9 or 10 before the damage", n)
			}
			next := uint64(len(ents) + 1)
			must(t, w.Save(hardState(1, next), []*raftpb.Entry{entry(next, 1, "after")}))
			w.Close()
			_, _, ents, err = readLog(t, dir, Snapshot{})
			must(t, err)
			if string(ents[len(ents)-1].Data) != "after" {
				t.Fatal("entry written after the repair was not read back")
			}
		})
	}
}

func TestCorruptionInTheMiddleIsAnError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	writeLog(t, dir, 10, 1)
	path := lastSegment(t, dir)
	b, _ := os.ReadFile(path)
	b[200] ^= 0xff // inside an early record, valid records follow
	must(t, os.WriteFile(path, b, 0o600))
	_, _, _, err := readLog(t, dir, Snapshot{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("err = %v, want ErrCorrupt naming %s and an offset", err, path)
	}
}

func TestReleaseAndReopenFromSnapshot(t *testing.T) {
	smallSegments(t, 4096)
	dir := filepath.Join(t.TempDir(), "wal")
	writeLog(t, dir, 200, 5)
	w, err := Open(dir, Snapshot{}, nil)
	must(t, err)
	_, _, _, err = w.ReadAll()
	must(t, err)
	before := w.segmentCount()
	snap := Snapshot{Index: 150, Term: 1}
	must(t, w.SaveSnapshot(snap))
	must(t, w.ReleaseLockTo(150))
	after := w.segmentCount()
	w.Close()
	if after >= before {
		t.Fatalf("segments %d -> %d: nothing released", before, after)
	}
	_, _, ents, err := readLog(t, dir, snap)
	must(t, err)
	if len(ents) != 50 || ents[0].GetIndex() != 151 {
		t.Fatalf("after snapshot: %d entries from %d", len(ents), ents[0].GetIndex())
	}
	if _, _, _, err := readLog(t, dir, Snapshot{Index: 140, Term: 1}); err == nil {
		t.Fatal("opening at a snapshot the wal never recorded succeeded")
	}
}

func TestSegmentsArePreallocated(t *testing.T) {
	smallSegments(t, 1<<16)
	dir := filepath.Join(t.TempDir(), "wal")
	writeLog(t, dir, 3, 1)
	st, err := os.Stat(lastSegment(t, dir))
	must(t, err)
	if st.Size() != SegmentSize {
		t.Fatalf("segment is %d bytes, want preallocated %d", st.Size(), SegmentSize)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	w, err := Create(dir, nil, nil)
	must(t, err)
	defer w.Close()
	if _, err := Open(dir, Snapshot{}, nil); err == nil {
		t.Fatal("a second process could open a locked wal")
	}
}

func TestSnapshotter(t *testing.T) {
	dir := t.TempDir()
	s := NewSnapshotter(dir, nil)
	if _, err := s.Load(); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("empty dir: %v", err)
	}
	for i := uint64(1); i <= 4; i++ {
		idx, term := i*10, uint64(1)
		must(t, s.SaveSnap(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: &idx, Term: &term}}))
	}
	names, _ := s.names()
	b, _ := os.ReadFile(names[0])
	b[len(b)-1] ^= 0xff
	must(t, os.WriteFile(names[0], b, 0o600))
	snap, err := s.Load()
	must(t, err)
	if snap.GetMetadata().GetIndex() != 30 {
		t.Fatalf("loaded index %d, want 30 after skipping the damaged newest", snap.GetMetadata().GetIndex())
	}
	must(t, s.Purge(2))
	if names, _ := s.names(); len(names) != 2 {
		t.Fatalf("%d snapshots after purge, want 2", len(names))
	}
}

func BenchmarkSave(b *testing.B) {
	w, err := Create(filepath.Join(b.TempDir(), "wal"), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	val := strings.Repeat("v", 256)
	idx := uint64(0)
	for b.Loop() {
		ents := make([]*raftpb.Entry, 100)
		for i := range ents {
			idx++
			ents[i] = entry(idx, 1, val)
		}
		if err := w.Save(hardState(1, idx), ents); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSyncOnlyWhenRaftNeedsIt: entries and term or vote changes must be
// durable before raft acts on them; a commit index alone need not be.
func TestSyncOnlyWhenRaftNeedsIt(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "wal"), nil, nil)
	must(t, err)
	defer w.Close()
	vote := func(term, vote, commit uint64) *raftpb.HardState {
		return &raftpb.HardState{Term: &term, Vote: &vote, Commit: &commit}
	}
	steps := []struct {
		name string
		hs   *raftpb.HardState
		ents []*raftpb.Entry
		sync bool
	}{
		{"first hard state", vote(1, 1, 0), nil, true},
		{"entries", nil, []*raftpb.Entry{entry(1, 1, "a")}, true},
		{"commit index only", vote(1, 1, 1), nil, false},
		{"unchanged hard state", vote(1, 1, 1), nil, false},
		{"new term", vote(2, 0, 1), nil, true},
		{"new vote", vote(2, 3, 1), nil, true},
		{"entries with commit", vote(2, 3, 2), []*raftpb.Entry{entry(2, 2, "b")}, true},
	}
	for _, st := range steps {
		before := w.syncs
		must(t, w.Save(st.hs, st.ents))
		if synced := w.syncs > before; synced != st.sync {
			t.Errorf("%s: synced %v, want %v", st.name, synced, st.sync)
		}
	}
}

// HasState tells a WAL raft never wrote into from one it did, reading only
// the head of the log.
func TestHasState(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, w *WAL)
		want  bool
	}{
		{"created only", func(*testing.T, *WAL) {}, false},
		{"a hard state", func(t *testing.T, w *WAL) {
			if err := w.Save(hardState(1, 0), nil); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"entries", func(t *testing.T, w *WAL) {
			if err := w.Save(nil, []*raftpb.Entry{entry(1, 1, "x")}); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := Create(dir, []byte("meta"), nil)
			if err != nil {
				t.Fatal(err)
			}
			tt.write(t, w)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got, err := HasState(dir); err != nil || got != tt.want {
				t.Fatalf("HasState = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	t.Run("several segments", func(t *testing.T) {
		smallSegments(t, 4096)
		dir := t.TempDir()
		writeLog(t, dir, 200, 10)
		if got, err := HasState(dir); err != nil || !got {
			t.Fatalf("HasState = %v, %v; want true", got, err)
		}
	})
}
