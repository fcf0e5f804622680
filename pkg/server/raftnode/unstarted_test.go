package raftnode

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
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
