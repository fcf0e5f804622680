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

var (
	kvctlOnce sync.Once
	kvctlPath string
	kvctlErr  error
)

// BuildKvctl returns the kvctl binary: bin/kvctl when make built it,
// otherwise one built once per test process.
func BuildKvctl(t testing.TB) string {
	t.Helper()
	kvctlOnce.Do(func() { kvctlPath, kvctlErr = binary("kvctl") })
	if kvctlErr != nil {
		t.Fatal(kvctlErr)
	}
	return kvctlPath
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
