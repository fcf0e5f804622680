package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/pkg/version"
	"github.com/kvd-io/kvd/tests/framework"
)

// TestConfigSources sets kvd's limits from a YAML config file and from
// KVD_* variables, and checks the precedence flag > env > file by the
// limits the server then enforces. It also checks that SIGTERM stops kvd
// cleanly and that a restart keeps the data.
func TestConfigSources(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "kvd.yaml")
	yaml := "max-txn-ops: 2\nmax-request-bytes: 2048\nsnapshot-count: 100\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	m := framework.NewMemberAt(t, framework.KvdBin(t), "cfg", framework.PickPort(t), framework.PickPort(t),
		"--config-file", cfgFile, "--max-request-bytes", "8192")
	m.Env = []string{"KVD_MAX_TXN_OPS=3", "KVD_MAX_REQUEST_BYTES=1024"}
	m.Start()
	t.Cleanup(m.Stop)

	c := newClientv3(t, m.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ops := func(n int) error {
		var puts []clientv3.Op
		for i := range n {
			puts = append(puts, clientv3.OpPut(fmt.Sprintf("k%d", i), "v"))
		}
		_, err := c.Txn(ctx).Then(puts...).Commit()
		return err
	}
	// The env (3) beats the file (2) for --max-txn-ops.
	if err := ops(3); err != nil {
		t.Fatalf("3 ops with KVD_MAX_TXN_OPS=3: %v", err)
	}
	if err := ops(4); !errors.Is(rpctypes.Error(err), rpctypes.ErrTooManyOps) {
		t.Fatalf("4 ops: %v", err)
	}
	// The flag (8192) beats the env (1024) and the file (2048).
	if _, err := c.Put(ctx, "mid", string(make([]byte, 4000))); err != nil {
		t.Fatalf("4000-byte put under an 8192-byte limit: %v", err)
	}
	if _, err := c.Put(ctx, "big", string(make([]byte, 9000))); !errors.Is(rpctypes.Error(err), rpctypes.ErrRequestTooLarge) {
		t.Fatalf("9000-byte put: %v", err)
	}

	checkVersions(t, m)
	m.Stop()
	if m.ExitCode != 0 {
		t.Fatalf("kvd exited %d on SIGTERM; log:\n%s", m.ExitCode, m.Log())
	}
	m.Start()
	c2 := newClientv3(t, m.Endpoint)
	resp, err := c2.Get(ctx, "mid")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("after graceful restart: %v %v", resp, err)
	}
}

// checkVersions: /version and kvd --version name both the etcd API level
// kvd answers as and kvd's own release.
func checkVersions(t *testing.T, m *framework.Member) {
	resp, err := http.Get("http://" + m.Endpoint + "/version")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v["etcdserver"], "3.7.") || v["kvd"] != version.Version {
		t.Fatalf("/version = %v", v)
	}
	out, err := exec.Command(m.Bin, "--version").Output()
	if err != nil || !strings.Contains(string(out), "kvd Version: "+version.Version) || !strings.Contains(string(out), "etcd API Version: 3.7") {
		t.Fatalf("kvd --version: %q %v", out, err)
	}
}

// TestEnablePprof: runtime profiles are served on the client URL only when
// --enable-pprof asks for them.
func TestEnablePprof(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  int
	}{
		{nil, http.StatusNotFound},
		{[]string{"--enable-pprof"}, http.StatusOK},
	} {
		m := framework.StartKvd(t, tc.flags...)
		resp, err := http.Get("http://" + m.Endpoint + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("flags %v: /debug/pprof/ answered %s, want %d", tc.flags, resp.Status, tc.want)
		}
	}
}
