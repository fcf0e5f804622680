package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		code    int
		eps     string
		timeout time.Duration
		hex     bool
		logs    []string // level and variable of each log line
	}{
		{name: "defaults", eps: "[127.0.0.1:2379]", timeout: 2 * time.Second},
		{name: "ETCDCTL_ sets unset flags",
			env: []string{"ETCDCTL_ENDPOINTS=a:1,b:2", "ETCDCTL_DIAL_TIMEOUT=3s", "ETCDCTL_HEX=true"},
			eps: "[a:1,b:2]", timeout: 3 * time.Second, hex: true},
		{name: "KVCTL_ wins over ETCDCTL_",
			env: []string{"ETCDCTL_ENDPOINTS=a:1", "KVCTL_ENDPOINTS=k:1", "KVCTL_DIAL_TIMEOUT=4s"},
			eps: "[k:1]", timeout: 4 * time.Second},
		{name: "empty variables set nothing",
			env: []string{"ETCDCTL_ENDPOINTS=", "KVCTL_ENDPOINTS="}, eps: "[127.0.0.1:2379]", timeout: 2 * time.Second},
		{name: "invalid values are ignored with a warning",
			env: []string{"ETCDCTL_DIAL_TIMEOUT=soon"}, eps: "[127.0.0.1:2379]", timeout: 2 * time.Second,
			logs: []string{"warn ETCDCTL_DIAL_TIMEOUT=soon"}},
		{name: "unknown variables draw a warning",
			env: []string{"ETCDCTL_API=3", "KVCTL_PREFIX=x", "OTHER=1"}, eps: "[127.0.0.1:2379]", timeout: 2 * time.Second,
			logs: []string{"warn ETCDCTL_API=3", "warn KVCTL_PREFIX=x"}},
		{name: "a variable for a flag on the command line is fatal",
			args: []string{"--endpoints", "x:1"}, env: []string{"ETCDCTL_HEX=true", "KVCTL_ENDPOINTS=y:1"},
			code: exitError, logs: []string{"fatal KVCTL_ENDPOINTS"}},
		{name: "even when empty",
			args: []string{"--dial-timeout", "1s"}, env: []string{"ETCDCTL_DIAL_TIMEOUT="},
			code: exitError, logs: []string{"fatal ETCDCTL_DIAL_TIMEOUT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &globals{}
			fs := pflag.NewFlagSet("kvctl", pflag.ContinueOnError)
			g.register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			err := applyEnv(fs, tt.env, &log)
			if code := exitCode(err); code != tt.code {
				t.Fatalf("exit code %d (%v), want %d", code, err, tt.code)
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(log.String()), "\n") {
				if l == "" {
					continue
				}
				var entry struct {
					Level string `json:"level"`
					Var   string `json:"environment-variable"`
				}
				if err := json.Unmarshal([]byte(l), &entry); err != nil {
					t.Fatalf("log line %q is not JSON: %v", l, err)
				}
				lines = append(lines, entry.Level+" "+entry.Var)
			}
			if strings.Join(lines, "|") != strings.Join(tt.logs, "|") {
				t.Fatalf("log lines %q, want %q", lines, tt.logs)
			}
			if tt.code != 0 {
				return
			}
			if got := fs.Lookup("endpoints").Value.String(); got != tt.eps || g.dialTimeout != tt.timeout || g.hex != tt.hex {
				t.Fatalf("endpoints %s, dial timeout %v, hex %v", got, g.dialTimeout, g.hex)
			}
		})
	}
}
