package raftnode

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/kvd-io/kvd/pkg/server/wal"
)

// A WAL that a member created but never persisted a Ready into is removed,
// so the member bootstraps again; one holding raft state is kept.
func TestDiscardUnstarted(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		gone    bool
	}{
		{"no wal", func(*testing.T, string) {}, false},
		{"created, raft never started", func(t *testing.T, dir string) {
			n, _, err := Open(testConfig(dir))
			if err != nil {
				t.Fatal(err)
			}
			n.Stop()
		}, true},
		{"bootstrapped and committed", func(t *testing.T, dir string) {
			n, _ := startSingle(t, testConfig(dir))
			commit(t, n, "x")
			n.Stop()
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.prepare(t, dir)
			existed := WALExists(dir)
			gone, err := DiscardUnstarted(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if gone != tt.gone || WALExists(dir) != (existed && !tt.gone) {
				t.Fatalf("DiscardUnstarted = %v (WAL there after: %v), want %v", gone, WALExists(dir), tt.gone)
			}
			if !tt.gone {
				return
			}
			// The member bootstraps anew and elects itself.
			n, restored := startSingle(t, testConfig(dir))
			defer n.Stop()
			if !restored.Fresh {
				t.Fatal("after the discard the member is not fresh")
			}
			commit(t, n, "y")
		})
	}
}

// CompactLog trims the log held in memory to CatchUpEntries behind the
// index given, and writes no snapshot: the WAL still replays it all.
func TestCompactLogKeepsCatchUpEntriesInMemory(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.CatchUpEntries = 5
	n, _ := startSingle(t, cfg)
	cs := commitMany(t, n, "p", 30)
	applied := n.Status().Applied
	if err := n.CompactLog(applied, cs); err != nil {
		t.Fatal(err)
	}
	if first, _ := n.storage.FirstIndex(); first != applied-5+1 {
		t.Fatalf("first index in memory %d after CompactLog(%d), want %d", first, applied, applied-4)
	}
	n.Stop()
	if _, err := wal.NewSnapshotter(filepath.Join(dir, "snap"), nil).Load(); !errors.Is(err, wal.ErrNoSnapshot) {
		t.Fatalf("a snapshot was written to disk: %v", err)
	}
	// The restart replays the whole WAL.
	n, restored, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if first, _ := n.storage.FirstIndex(); restored.Snapshot != nil || first != 1 {
		t.Fatalf("after restart: snapshot %v, first index %d; want none and 1", restored.Snapshot, first)
	}
}

// A snapshot file is saved before its WAL record. A member killed between
// the two restarts from the newest snapshot the WAL records, replays every
// entry after it, and removes the orphaned file.
func TestOpenSkipsSnapshotWithoutWALRecord(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	n, _ := startSingle(t, cfg)
	cs := commitMany(t, n, "p", 10)
	// Every entry so far is committed, the last one included: raft's own
	// applied index may still lag it by the batch being handed over.
	recorded, _ := n.storage.LastIndex()
	if err := n.Snapshot(recorded, cs); err != nil {
		t.Fatal(err)
	}
	commitMany(t, n, "q", 10)
	applied, _ := n.storage.LastIndex()
	term := n.Term()
	n.Stop()
	// What a kill between SaveSnap and the WAL record leaves behind.
	orphan := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: &applied, Term: &term, ConfState: cs}}
	snapDir := filepath.Join(dir, "snap")
	if err := wal.NewSnapshotter(snapDir, nil).SaveSnap(orphan); err != nil {
		t.Fatal(err)
	}

	n, restored, err := Open(cfg)
	if err != nil {
		t.Fatalf("restart with an orphaned snapshot file: %v", err)
	}
	defer n.Stop()
	if got := restored.Snapshot.GetMetadata().GetIndex(); got != recorded {
		t.Fatalf("restarted from snapshot %d, want the recorded one at %d", got, recorded)
	}
	if last, _ := n.storage.LastIndex(); last != applied {
		t.Fatalf("last index after restart %d, want %d", last, applied)
	}
	files, _ := filepath.Glob(filepath.Join(snapDir, "*.snap"))
	if len(files) != 1 {
		t.Fatalf("snapshot files after restart: %v, want only the recorded one", files)
	}
}

// commitMany commits count entries named prefix0, prefix1, ... and returns
// the configuration the last conf change among them set, if any.
func commitMany(t *testing.T, n *Node, prefix string, count int) *raftpb.ConfState {
	t.Helper()
	var cs *raftpb.ConfState
	for i := range count {
		if got := commit(t, n, fmt.Sprintf("%s%d", prefix, i)); got != nil {
			cs = got
		}
	}
	return cs
}
