package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
)

// slowElections makes raft's own election timeout (30 to 60 s) far longer
// than any wait below: a member that serves within these tests did not
// wait one out, which is what start-up promises (see pkg/server/election.go).
var slowElections = []string{"--heartbeat-interval", "100", "--election-timeout", "30000"}

// readBack reads key linearizably from m and requires want.
func readBack(ctx context.Context, t *testing.T, m *framework.Member, key, want string) {
	t.Helper()
	resp, err := client(t, m.Endpoint).Get(ctx, key)
	if err != nil {
		t.Fatalf("linearizable get from %s: %v", m.Name, err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != want {
		t.Fatalf("%s: %s = %v, want %q", m.Name, key, resp.Kvs, want)
	}
}

func TestRestartedSingleMemberServes(t *testing.T) {
	m := framework.StartKvd(t, slowElections...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client(t, m.Endpoint).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	m.Start()
	readBack(ctx, t, m, "k", "v")
}

func TestWholeClusterRestartElectsLeader(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3, slowElections...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := client(t, endpointsOf(ms)...).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		m.Stop()
	}
	for _, m := range ms {
		m.Launch()
	}
	for _, m := range ms {
		m.WaitHealthy(20 * time.Second)
		readBack(ctx, t, m, "k", "v")
	}
}

// A leader stopped gracefully hands leadership over first, so the others
// serve on without an election, and it serves again once restarted.
func TestStoppedLeaderHandsOver(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3, slowElections...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := client(t, endpointsOf(ms)...)
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	leader := -1
	for i, m := range ms {
		st, err := c.Status(ctx, m.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader == st.Header.MemberId {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no member reports itself leader")
	}
	ms[leader].Stop()
	for i, m := range ms {
		if i == leader {
			continue
		}
		m.WaitHealthy(20 * time.Second)
		sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := client(t, m.Endpoint).Put(sctx, "after/"+m.Name, "v")
		scancel()
		if err != nil {
			t.Fatalf("put through %s after the leader stopped: %v", m.Name, err)
		}
	}
	ms[leader].Start()
	readBack(ctx, t, ms[leader], "after/"+ms[(leader+1)%3].Name, "v")
}

func endpointsOf(ms []*framework.Member) []string {
	eps := make([]string, len(ms))
	for i, m := range ms {
		eps[i] = m.Endpoint
	}
	return eps
}
