package framework

import (
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

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// BuildKvctl returns the kvctl binary: bin/kvctl when make built it,
// otherwise one built once per test process.
func BuildKvctl(t testing.TB) string { return ourBinary(t, "kvctl") }

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

var (
	builtMu sync.Mutex
	built   = map[string]*builtBinary{}
)

// ourBinary finds or builds cmd/<name> once per test process.
func ourBinary(t testing.TB, name string) string {
	t.Helper()
	builtMu.Lock()
	b, ok := built[name]
	if !ok {
		b = &builtBinary{}
		built[name] = b
	}
	builtMu.Unlock()
	b.once.Do(func() { b.path, b.err = binary(name) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// binary finds bin/<name> or builds cmd/<name> into a temp dir.
func binary(name string) (string, error) {
	if b := filepath.Join(repoRoot(), "bin", name); fileExists(b) && os.Getenv("KVD_REBUILD") == "" {
		return b, nil
	}
	dir, err := os.MkdirTemp("", name+"-bin-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	return out, goBuild(out, filepath.Join(repoRoot(), "cmd", name))
}
