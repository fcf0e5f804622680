package server

import (
	"os"
	"testing"

	"github.com/kvd-io/kvd/pkg/server/raftnode"
)

// A crash after raft persisted a received snapshot but before the apply
// loop swapped its database in is finished at the next start; a database
// for another index is left alone.
func TestInstallPendingDB(t *testing.T) {
	for _, tc := range []struct {
		name            string
		received, index uint64
		installed       bool
	}{
		{"snapshot persisted", 42, 42, true},
		{"no database received", 0, 42, false},
		{"database of another snapshot", 41, 42, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{DataDir: t.TempDir()}
			if err := os.MkdirAll(cfg.snapDir(), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cfg.dbPath(), []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.received != 0 {
				if err := os.WriteFile(raftnode.SnapshotDBPath(cfg.snapDir(), tc.received), []byte("new"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := cfg.installPendingDB(tc.index); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(cfg.dbPath())
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b) == "new"; got != tc.installed {
				t.Fatalf("database is %q, installed=%v", b, tc.installed)
			}
		})
	}
}
