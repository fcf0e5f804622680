package cluster

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestEtcdctlAgainstKvdCluster: the real etcdctl v3.7.3 runs the cluster
// commands an operator uses against a 3-member kvd cluster.
func TestEtcdctlAgainstKvdCluster(t *testing.T) {
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	ms := framework.StartKvdCluster(t, 3)
	eps := framework.Endpoints(ms)
	run := func(args ...string) string {
		t.Helper()
		out, stderr, code := framework.RunCLI(t, etcdctl, eps, args...)
		if code != 0 {
			t.Fatalf("etcdctl %v: exit %d\n%s%s", args, code, out, stderr)
		}
		return out
	}
	eventually(t, 10*time.Second, "members publish their client URLs", func() error {
		out := run("member", "list")
		for _, m := range ms {
			if !strings.Contains(out, ", started, "+m.Name+", ") || !strings.Contains(out, m.ClientURL()) {
				return fmt.Errorf("member list lacks %s:\n%s", m.Name, out)
			}
		}
		return nil
	})

	// Simple format: endpoint, ID, version, ..., is leader (9th column).
	statusRows := func() [][]string {
		var rows [][]string
		for _, line := range strings.Split(strings.TrimSpace(run("endpoint", "status", "--cluster")), "\n") {
			rows = append(rows, strings.Split(line, ", "))
		}
		return rows
	}
	rows := statusRows()
	leaders := 0
	for _, r := range rows {
		if len(r) > 8 && r[8] == "true" {
			leaders++
		}
	}
	if len(rows) != 3 || leaders != 1 {
		t.Fatalf("endpoint status --cluster: %d rows, %d leaders: %v", len(rows), leaders, rows)
	}
	if health := run("endpoint", "health", "--cluster"); strings.Count(health, "is healthy") != 3 {
		t.Fatalf("endpoint health --cluster:\n%s", health)
	}
	hashes := regexp.MustCompile(`, (\d+), \d+`).FindAllStringSubmatch(run("endpoint", "hashkv", "--cluster"), -1)
	if len(hashes) != 3 || hashes[0][1] != hashes[1][1] || hashes[1][1] != hashes[2][1] {
		t.Fatalf("endpoint hashkv --cluster: %v", hashes)
	}

	peer := "http://127.0.0.1:" + strconv.Itoa(framework.PickPort(t))
	added := run("member", "add", "m4", "--peer-urls="+peer, "--learner")
	m := regexp.MustCompile(`Member\s+([0-9a-f]+) added as learner to cluster\s+([0-9a-f]+)`).FindStringSubmatch(added)
	if m == nil || !strings.Contains(added, `ETCD_INITIAL_CLUSTER_STATE="existing"`) || !strings.Contains(added, "m4="+peer) {
		t.Fatalf("member add:\n%s", added)
	}
	removed := regexp.MustCompile(`Member\s+` + m[1] + ` removed from cluster\s+` + m[2])
	if out := run("member", "remove", m[1]); !removed.MatchString(out) {
		t.Fatalf("member remove:\n%s", out)
	}

	// move-leader to a follower, found from the status rows.
	var follower string
	for _, r := range statusRows() {
		if r[8] == "false" {
			follower = r[1]
		}
	}
	if follower == "" {
		t.Fatalf("no follower in status rows %v", rows)
	}
	if moved := run("move-leader", follower); !strings.Contains(moved, "Leadership transferred from ") || !strings.HasSuffix(strings.TrimSpace(moved), " to "+follower) {
		t.Fatalf("move-leader:\n%s", moved)
	}
}
