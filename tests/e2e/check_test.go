package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
)

var (
	memoryUsedRe = regexp.MustCompile(`memory used : -?\d+\.\d\d MB`)
	barRenderRe  = regexp.MustCompile(`\r?\d+ / \d+ \[[->_]*\] \d+\.\d\d% (\?|\d+) p/s *\n?`)
)

// TestCheckDatascaleOnKvd runs check datascale with etcdctl and kvctl
// against kvd and requires the same outcome. The check reads the server's
// resident memory from /metrics (process_resident_memory_bytes), which kvd
// serves as etcd does, so both pass and leave no key behind.
func TestCheckDatascaleOnKvd(t *testing.T) {
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	m := framework.StartKvd(t)
	var results []framework.Result
	for _, bin := range []string{etcdctl, kvctl} {
		r := framework.Run(t, framework.Invocation{Bin: bin, Endpoints: m.Endpoint, Timeout: 2 * time.Minute,
			Args: []string{"check", "datascale", "--prefix", "/ds/"}})
		r.Stdout = memoryUsedRe.ReplaceAllString(r.Stdout, "memory used : X MB")
		r.Stderr = barRenderRe.ReplaceAllString(r.Stderr, "")
		results = append(results, r)
		left := framework.Run(t, framework.Invocation{Bin: kvctl, Endpoints: m.Endpoint, Args: []string{"get", "/ds/", "--prefix", "--count-only", "-w", "fields"}})
		if !strings.Contains(left.Stdout, `"Count" : 0`) {
			t.Fatalf("%s left keys behind: %+v", bin, left)
		}
	}
	if results[0] != results[1] {
		t.Fatalf("kvctl: %+v\netcdctl: %+v", results[1], results[0])
	}
	if results[1].Code != 0 || !strings.Contains(results[1].Stdout, "PASS") {
		t.Fatalf("check datascale did not pass on kvd: %+v", results[1])
	}
}
