package e2e

import (
	"fmt"
	"os"
	"path/filepath"
)

// cliSnapshotFile is where the snapshot steps save: the same path for
// every pairing, so outputs that name it compare equal; each pairing
// overwrites the last one's file, and the test removes it at the end.
var cliSnapshotFile = filepath.Join(os.TempDir(), fmt.Sprintf("kvd-cli-snapshot-%d.db", os.Getpid()))

func removeCLISnapshot() { os.Remove(cliSnapshotFile) }

// snapshotBehaviours are etcdctl's `snapshot save` (status and restore are
// etcdutl's, which etcdctl v3.7 does not have; tests/e2e/snapshot_test.go
// compares those with etcdutl). etcdctl logs its progress as JSON lines on
// stderr, which the comparison drops; kvctl prints none.
var snapshotBehaviours = []step{
	cmd("snapshot", "save", cliSnapshotFile),
	cmd("snapshot", "save"),
	cmd("snapshot", "save", cliSnapshotFile, "extra"),
	cmd("--endpoints", "127.0.0.1:1,127.0.0.1:2", "snapshot", "save", cliSnapshotFile),
	cmd("snapshot", "save", filepath.Join(os.TempDir(), "kvd-no-such-dir", "x.db")),
	// With auth on, only root may save (the core list made root and
	// testuser).
	cmd("--user=root:123456", "auth", "enable"),
	cmd("snapshot", "save", cliSnapshotFile),
	cmd("--user=testuser:pw", "snapshot", "save", cliSnapshotFile),
	cmd("--user=root:123456", "snapshot", "save", cliSnapshotFile),
	cmd("--user=root:123456", "auth", "disable"),
	// Saving changed nothing: the same revision as before.
	cmd("get", "--prefix", "/", "-w", "json"),
}
