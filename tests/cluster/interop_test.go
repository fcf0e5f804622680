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

// TestCLIAgainstKvdCluster: the real etcdctl v3.7.3, and kvctl, run the
// cluster commands an operator uses against a 3-member kvd cluster, taking
// a fourth member through add, start, promote, update and remove.
func TestCLIAgainstKvdCluster(t *testing.T) {
	for name, bin := range map[string]func(testing.TB) string{
		"etcdctl": func(t testing.TB) string { return framework.RequireBin(t, framework.EtcdctlBin()) },
		"kvctl":   framework.BuildKvctl,
	} {
		t.Run(name, func(t *testing.T) { testCLIAgainstKvdCluster(t, bin(t)) })
	}
}

func testCLIAgainstKvdCluster(t *testing.T, ctl string) {
	ms := framework.StartKvdCluster(t, 3)
	eps := framework.Endpoints(ms)
	run := func(args ...string) string {
		t.Helper()
		out, stderr, code := framework.RunCLI(t, ctl, eps, args...)
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
	m4 := framework.NewJoiningMember(t, ms, "m4", peer)
	m4.Launch()
	m4.WaitHealthy(30 * time.Second)
	eventually(t, 20*time.Second, "promote the learner", func() error {
		out, stderr, code := framework.RunCLI(t, ctl, eps, "member", "promote", m[1])
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, stderr)
		}
		if !regexp.MustCompile(`Member\s+` + m[1] + ` promoted in cluster\s+` + m[2]).MatchString(out) {
			t.Fatalf("member promote:\n%s", out)
		}
		return nil
	})
	newPeer := strings.Replace(peer, "127.0.0.1", "localhost", 1)
	if out := run("member", "update", m[1], "--peer-urls="+newPeer); !regexp.MustCompile(`Member\s+` + m[1] + ` updated in cluster\s+` + m[2]).MatchString(out) {
		t.Fatalf("member update:\n%s", out)
	}
	if out := run("member", "list"); !strings.Contains(out, m[1]+", started, m4, "+newPeer+", "+m4.ClientURL()+", false") {
		t.Fatalf("member list after promote and update:\n%s", out)
	}
	removed := regexp.MustCompile(`Member\s+` + m[1] + ` removed from cluster\s+` + m[2])
	if out := run("member", "remove", m[1]); !removed.MatchString(out) {
		t.Fatalf("member remove:\n%s", out)
	}
	if _, exited := m4.WaitExit(15 * time.Second); !exited {
		t.Fatal("the removed member still runs")
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
