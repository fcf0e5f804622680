package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestKvctlEnvironment: kvctl takes its global flags from ETCDCTL_* and
// KVCTL_* variables, KVCTL_* wins over ETCDCTL_*, and a flag on the
// command line wins over both.
func TestKvctlEnvironment(t *testing.T) {
	m := framework.StartKvd(t)
	kvctl := framework.BuildKvctl(t)
	run := func(env []string, args ...string) string {
		t.Helper()
		c := exec.Command(kvctl, args...)
		c.Env = append(framework.CleanEnv(), env...)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("kvctl %q with %q: %v\n%s", args, env, err, out)
		}
		return string(out)
	}
	run([]string{"ETCDCTL_ENDPOINTS=" + m.Endpoint}, "put", "k", "v")
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"ETCDCTL_ endpoints and output", []string{"ETCDCTL_ENDPOINTS=" + m.Endpoint, "ETCDCTL_WRITE_OUT=fields"}, []string{"get", "k"}, `"Key" : "k"`},
		{"KVCTL_ wins over ETCDCTL_", []string{"ETCDCTL_ENDPOINTS=127.0.0.1:1", "KVCTL_ENDPOINTS=" + m.Endpoint, "ETCDCTL_WRITE_OUT=fields", "KVCTL_WRITE_OUT=json"}, []string{"get", "k"}, `"kvs":[{"key":"aw=="`},
		{"flag and env for different settings combine", []string{"ETCDCTL_ENDPOINTS=" + m.Endpoint}, []string{"-w", "simple", "get", "k", "--print-value-only"}, "v\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(tt.env, tt.args...); !strings.Contains(got, tt.want) {
				t.Fatalf("output %q does not contain %q", got, tt.want)
			}
		})
	}
}
