package framework

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// EtcdBin is the reference etcd v3.7.3 binary the Makefile builds into its
// tools cache and names in $KVD_ETCD_BIN.
func EtcdBin() string { return envOr("KVD_ETCD_BIN", "/tmp/etcdref/etcd") }

// EtcdctlBin is the reference etcdctl v3.7.3, from $KVD_ETCDCTL_BIN.
func EtcdctlBin() string { return envOr("KVD_ETCDCTL_BIN", "/tmp/etcdref/etcdctl") }

// EtcdutlBin is the reference etcdutl v3.7.3 (offline snapshot status,
// restore, hashkv and defrag over a database file), from $KVD_ETCDUTL_BIN.
func EtcdutlBin() string { return envOr("KVD_ETCDUTL_BIN", "/tmp/etcdref/etcdutl") }

// Etcd35Bin is etcd v3.5, the last release with --discovery (a discovery
// URL), which the Makefile builds from tools/etcd35 and names in
// $KVD_ETCD35_BIN; empty when unset.
func Etcd35Bin() string { return os.Getenv("KVD_ETCD35_BIN") }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// BuildKvctl builds cmd/kvctl from the working tree once per test
// process and returns the binary, so tests never run a stale bin/kvctl.
// $KVD_KVCTL_BIN names a ready binary instead.
func BuildKvctl(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("KVD_KVCTL_BIN"); b != "" {
		return b
	}
	return ourBinary(t, "kvctl", true)
}

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

var (
	builtMu sync.Mutex
	built   = map[string]*builtBinary{}
)

// ourBinary finds or builds cmd/<name> once per test process; fresh
// skips the bin/<name> that make may have left.
func ourBinary(t testing.TB, name string, fresh bool) string {
	t.Helper()
	builtMu.Lock()
	b, ok := built[name]
	if !ok {
		b = &builtBinary{}
		built[name] = b
	}
	builtMu.Unlock()
	b.once.Do(func() { b.path, b.err = binary(name, fresh) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// binary finds bin/<name> or builds cmd/<name>. Builds go to one cache
// folder, written under a temporary name and renamed into place, so
// test processes building at the same time never run a half-written
// file and do not leave a copy each behind.
func binary(name string, fresh bool) (string, error) {
	if b := filepath.Join(repoRoot(), "bin", name); !fresh && fileExists(b) && os.Getenv("KVD_REBUILD") == "" {
		return b, nil
	}
	// One folder per checkout: worktrees of other branches build their
	// own cmd/<name>, and must not replace ours while our tests run it.
	root := sha256.Sum256([]byte(repoRoot()))
	dir := filepath.Join(os.TempDir(), "kvd-test-bin-"+hex.EncodeToString(root[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, name+".build-")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := goBuild(tmp.Name(), filepath.Join(repoRoot(), "cmd", name)); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	return out, os.Rename(tmp.Name(), out)
}
