package raftnode

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
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
			n, _, err := Open(testConfig(dir))
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(1, []raft.Peer{{ID: 1}}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := n.Propose(ctx, []byte("x")); err != nil {
				t.Fatal(err)
			}
			collect(t, n, "x")
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
			n, restored, err := Open(testConfig(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer n.Stop()
			if !restored.Fresh {
				t.Fatal("after the discard the member is not fresh")
			}
			if err := n.Start(1, []raft.Peer{{ID: 1}}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := n.Propose(ctx, []byte("y")); err != nil {
				t.Fatal(err)
			}
			collect(t, n, "y")
		})
	}
}

// CompactLog trims the log held in memory to CatchUpEntries behind the
// index given, and writes no snapshot: the WAL still replays it all.
func TestCompactLogKeepsCatchUpEntriesInMemory(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.CatchUpEntries = 5
	n, _, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(1, []raft.Peer{{ID: 1}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cs *raftpb.ConfState
	for i := range 30 {
		want := fmt.Sprintf("p%d", i)
		if err := n.Propose(ctx, []byte(want)); err != nil {
			t.Fatal(err)
		}
		if _, got := collect(t, n, want); got != nil {
			cs = got
		}
	}
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
