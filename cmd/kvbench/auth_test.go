package main

import (
	"testing"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestAuthScenarios: after auth-setup, puts and ranges as the user all
// succeed and are counted, calls without the user are refused, and the
// cli command times a CLI that logs in on every run.
func TestAuthScenarios(t *testing.T) {
	kvctl := framework.BuildKvctl(t)
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			m := s.start(t)
			if out, code := runKvbench(t, "--endpoints", m.Endpoint, "auth-setup", "bench:pw"); code != 0 {
				t.Fatalf("auth-setup: exit %d\n%s", code, out)
			}
			runs := []struct {
				args   []string
				ok     int
				failed int
			}{
				{[]string{"--user", "bench:pw", "--conns", "2", "--clients", "4", "put", "--total", "200"}, 200, 0},
				{[]string{"--user", "bench:pw", "--conns", "2", "--clients", "4", "range", "foo", "--total", "200"}, 200, 0},
				{[]string{"--conns", "1", "--clients", "1", "range", "foo", "--total", "20"}, 0, 20},
				{[]string{"--user", "bench:pw", "--total", "3", "cli", kvctl, "get", "foo"}, 3, 0},
			}
			for _, r := range runs {
				out, code := runKvbench(t, append([]string{"--endpoints", m.Endpoint}, r.args...)...)
				if code != 0 {
					t.Fatalf("%q: exit %d\n%s", r.args, code, out)
				}
				res := parseResults(t, out)
				if len(res) != 1 || res[0].ok != r.ok || res[0].failed != r.failed {
					t.Errorf("%q: %+v, want ok=%d failed=%d\n%s", r.args, res, r.ok, r.failed, out)
				}
			}
		})
	}
}
