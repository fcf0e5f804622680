package cluster

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestLeaderChangeMetrics: moving the leader of a 3-member cluster shows on
// every member's /metrics as one more leader change, and the new leader
// alone reports itself as leader; puts through one member are counted by
// its gRPC series and move every member's applied index and WAL fsyncs.
func TestLeaderChangeMetrics(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lead := leaderOf(ctx, t, ms)
	before := make([]framework.Scrape, len(ms))
	for i, m := range ms {
		before[i] = framework.ScrapeMetrics(t, m.ClientURL()+"/metrics")
		if v := before[i].Must(t, "kvd_server_has_leader"); v != 1 {
			t.Fatalf("%s: kvd_server_has_leader = %v", m.Name, v)
		}
	}
	next := (lead + 1) % len(ms)
	c := client(t, ms[lead].Endpoint)
	st, err := c.Status(ctx, ms[next].Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.MoveLeader(ctx, st.Header.MemberId); err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		eventually(t, 10*time.Second, m.Name+" sees the new leader", func() error {
			s := framework.ScrapeMetrics(t, m.ClientURL()+"/metrics")
			changes := s.Must(t, "kvd_server_leader_changes_seen_total") - before[i].Must(t, "kvd_server_leader_changes_seen_total")
			isLeader := s.Must(t, "kvd_server_is_leader")
			if changes != 1 || isLeader != b2f(i == next) {
				return fmt.Errorf("leader changes moved by %v, is_leader %v", changes, isLeader)
			}
			return nil
		})
	}

	const puts = 10
	via := ms[lead] // a follower now
	for i := range puts {
		if _, err := client(t, via.Endpoint).Put(ctx, fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	putOK := []string{"grpc_method", "Put", "grpc_code", "OK"}
	if d := framework.ScrapeMetrics(t, via.ClientURL()+"/metrics").Must(t, "kvd_grpc_server_handled_total", putOK...) -
		before[lead].Must(t, "kvd_grpc_server_handled_total", putOK...); d != puts {
		t.Errorf("%s counted %v puts, want %d", via.Name, d, puts)
	}
	for i, m := range ms {
		eventually(t, 10*time.Second, m.Name+" applies the puts", func() error {
			s := framework.ScrapeMetrics(t, m.ClientURL()+"/metrics")
			applied := s.Must(t, "kvd_server_proposals_applied_total") - before[i].Must(t, "kvd_server_proposals_applied_total")
			fsyncs := s.Must(t, "kvd_disk_wal_fsync_duration_seconds") - before[i].Must(t, "kvd_disk_wal_fsync_duration_seconds")
			if applied < puts || fsyncs < 1 {
				return fmt.Errorf("applied index moved by %v, fsyncs by %v", applied, fsyncs)
			}
			return nil
		})
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// healthQuestions are asked of a member in each state.
var healthQuestions = []string{
	"/health", "/health?serializable=true", "/livez?verbose", "/readyz?verbose",
	"/readyz?verbose&exclude=linearizable_read", "/readyz/linearizable_read",
}

// linearizableFailure masks why the linearizable read failed: etcd
// v3.7.3 times out after its request timeout or sees the leader change,
// depending on timing; kvd fails once an election timeout has passed
// without a leader.
var linearizableFailure = regexp.MustCompile(`(?m)^\[-\]linearizable_read failed: .*$`)

// probeAnswers asks m the health questions.
func probeAnswers(t *testing.T, m *framework.Member) []string {
	t.Helper()
	var out []string
	for _, q := range healthQuestions {
		a := framework.Get(t, m.ClientURL()+q)
		body := linearizableFailure.ReplaceAllString(a.Body, "[-]linearizable_read failed: REASON")
		lines := strings.SplitAfter(body, "\n")
		slices.Sort(lines) // etcd lists its checks in random order
		out = append(out, fmt.Sprintf("%s: %d %q %q", q, a.Code, a.ContentType, strings.Join(lines, "")))
	}
	return out
}

// TestReadyzOnCutOffMember: a member whose two peers are stopped is
// alive but not ready, and /health says why, as etcd v3.7.3 answers in
// the same state; once a peer is back it is ready again. Each state is
// compared with an etcd cluster put through the same steps.
func TestReadyzOnCutOffMember(t *testing.T) {
	type states struct{ healthy, cutOff, recovered []string }
	run := func(t *testing.T, bin string) states {
		ms := framework.StartCluster(t, bin, 3)
		var s states
		s.healthy = probeAnswers(t, ms[0])
		ms[1].Stop()
		ms[2].Stop()
		eventually(t, 20*time.Second, ms[0].Name+" loses its leader", func() error {
			if a := framework.Get(t, ms[0].ClientURL()+"/health"); a.Code == 200 {
				return fmt.Errorf("/health: %v", a)
			}
			return nil
		})
		s.cutOff = probeAnswers(t, ms[0])
		ms[1].Start()
		ms[0].WaitHealthy(20 * time.Second)
		eventually(t, 20*time.Second, ms[0].Name+" ready again", func() error {
			if a := framework.Get(t, ms[0].ClientURL()+"/readyz"); a.Code != 200 {
				return fmt.Errorf("/readyz: %v", a)
			}
			return nil
		})
		s.recovered = probeAnswers(t, ms[0])
		return s
	}
	kvd := run(t, framework.KvdBin(t))
	for _, want := range []string{
		`/readyz?verbose: 503 "text/plain; charset=utf-8" "\n[+]data_corruption ok\n[+]non_learner ok\n[+]serializable_read ok\n[-]linearizable_read failed: REASON\n"`,
		`/health: 503 "text/plain; charset=utf-8" "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}\n"`,
	} {
		if !slices.Contains(kvd.cutOff, want) {
			t.Errorf("cut off, kvd did not answer\n  %s\nit answered\n  %s", want, strings.Join(kvd.cutOff, "\n  "))
		}
	}
	if slices.Equal(kvd.cutOff, kvd.healthy) || !slices.Equal(kvd.recovered, kvd.healthy) {
		t.Errorf("kvd's answers: healthy\n  %s\ncut off\n  %s\nrecovered\n  %s", strings.Join(kvd.healthy, "\n  "),
			strings.Join(kvd.cutOff, "\n  "), strings.Join(kvd.recovered, "\n  "))
	}
	etcd := run(t, framework.RequireBin(t, framework.EtcdBin()))
	for name, pair := range map[string][2][]string{
		"healthy": {kvd.healthy, etcd.healthy}, "cut off": {kvd.cutOff, etcd.cutOff}, "recovered": {kvd.recovered, etcd.recovered},
	} {
		for i := range pair[1] {
			if pair[0][i] != pair[1][i] {
				t.Errorf("%s: kvd answered\n  %s\netcd\n  %s", name, pair[0][i], pair[1][i])
			}
		}
	}
}
