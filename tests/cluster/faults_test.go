package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	kvdclient "github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/tests/framework"
)

// hashesAgree checks that every member hashes its history to the same
// value at revision rev.
func hashesAgree(ctx context.Context, t *testing.T, ms []*framework.Member, rev int64) error {
	t.Helper()
	var first uint32
	for i, m := range ms {
		h, err := client(t, m.Endpoint).HashKV(ctx, m.Endpoint, rev)
		if err != nil {
			return fmt.Errorf("hashkv %s: %w", m.Name, err)
		}
		if i == 0 {
			first = h.Hash
		} else if h.Hash != first {
			return fmt.Errorf("%s hashes %x at rev %d, %s %x", m.Name, h.Hash, rev, ms[0].Name, first)
		}
	}
	return nil
}

// followerOf is the index of a member that does not lead: the last one,
// unless it leads. Tests that stop or cut off a member pick a follower so
// as not to wait for an election as well.
func followerOf(ctx context.Context, t *testing.T, ms []*framework.Member) int {
	last := len(ms) - 1
	if st, err := client(t, ms[last].Endpoint).Status(ctx, ms[last].Endpoint); err == nil && st.Leader == st.Header.MemberId {
		return last - 1
	}
	return last
}

// stopFollower stops a follower of ms and returns it and the others.
// Stopping the leader would cost an election and the writes in flight to
// it, which is another test's business.
func stopFollower(ctx context.Context, t *testing.T, ms []*framework.Member) (*framework.Member, []*framework.Member) {
	t.Helper()
	lagging, rest := ms[2], ms[:2]
	if followerOf(ctx, t, ms) != 2 {
		lagging, rest = ms[0], ms[1:]
	}
	lagging.Stop()
	return lagging, rest
}

// caughtUpBySnapshot waits until the restarted member m holds n keys
// under prefix, and requires that it got them by installing the leader's
// database.
func caughtUpBySnapshot(ctx context.Context, t *testing.T, m *framework.Member, prefix string, n int64) {
	t.Helper()
	eventually(t, 30*time.Second, m.Name+" has every key", func() error {
		got, err := countOn(ctx, t, m, prefix)
		if err == nil && got != n {
			err = fmt.Errorf("%d keys, want %d", got, n)
		}
		return err
	})
	if !strings.Contains(m.Log(), "installed snapshot from leader") {
		t.Fatalf("%s caught up without a snapshot; log:\n%s", m.Name, m.Log())
	}
}

// countOn reads the number of keys under prefix from member m alone.
func countOn(ctx context.Context, t *testing.T, m *framework.Member, prefix string) (int64, error) {
	resp, err := client(t, m.Endpoint).Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}

// TestFollowerCatchesUpBySnapshot: a follower that missed more entries
// than the leader keeps in its log receives the leader's database, and
// keeps it across a restart.
func TestFollowerCatchesUpBySnapshot(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3, "--snapshot-count", "100", "--snapshot-catchup-entries", "10", "--log-level", "info")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lagging, rest := stopFollower(ctx, t, ms)
	c := client(t, rest[0].Endpoint, rest[1].Endpoint)
	for i := range 300 {
		putRetrying(ctx, t, c, fmt.Sprintf("k/%03d", i))
	}
	lagging.Start()
	caughtUpBySnapshot(ctx, t, lagging, "k/", 300)
	rev, err := c.Get(ctx, "k/000")
	if err != nil {
		t.Fatal(err)
	}
	if err := hashesAgree(ctx, t, ms, rev.Header.Revision); err != nil {
		t.Fatal(err)
	}
	lagging.Kill()
	lagging.Start()
	if n, err := countOn(ctx, t, lagging, "k/"); err != nil || n != 300 {
		t.Fatalf("after a restart the installed snapshot holds %d keys (%v)", n, err)
	}
}

// TestNewMemberCatchesUpBySnapshot: a member added after the leader's
// last raft snapshot joins behind a compacted log, so it must be sent the
// database, with a configuration that names it. Raft's own snapshot
// predates the member and would be refused by it forever (found by the
// robustness suite when a member was wiped and added back).
func TestNewMemberCatchesUpBySnapshot(t *testing.T) {
	flags := []string{"--snapshot-count", "100", "--snapshot-catchup-entries", "10", "--log-level", "info"}
	ms := framework.StartKvdCluster(t, 3, flags...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := client(t, ms[0].Endpoint, ms[1].Endpoint, ms[2].Endpoint)
	for i := range 250 {
		putRetrying(ctx, t, c, fmt.Sprintf("k/%03d", i))
	}
	peer := fmt.Sprintf("http://127.0.0.1:%d", framework.PickPort(t))
	if _, err := c.MemberAdd(ctx, []string{peer}); err != nil {
		t.Fatal(err)
	}
	m4 := framework.NewJoiningMember(t, ms, "m4", peer, flags...)
	m4.Launch()
	eventually(t, 30*time.Second, "the new member has every key", func() error {
		n, err := countOn(ctx, t, m4, "k/")
		if err == nil && n != 250 {
			err = fmt.Errorf("%d keys", n)
		}
		return err
	})
	if !strings.Contains(m4.Log(), "installed snapshot from leader") {
		t.Fatalf("the new member caught up without a snapshot; log:\n%s", m4.Log())
	}
	putRetrying(ctx, t, c, "k/after")
	rev, err := c.Get(ctx, "k/after")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "every member hashes alike", func() error {
		return hashesAgree(ctx, t, append(ms, m4), rev.Header.Revision)
	})
}

// TestWrongTokenCannotJoin: a member that lost its data and restarts as
// a new member with another cluster token forms another cluster ID; the
// cluster refuses its messages and keeps serving.
func TestWrongTokenCannotJoin(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stray := ms[2]
	stray.Stop()
	if err := os.RemoveAll(stray.DataDir); err != nil {
		t.Fatal(err)
	}
	stray.Extra = append(stray.Extra, "--initial-cluster-token", "another-cluster")
	stray.Launch()
	eventually(t, 10*time.Second, "the cluster refuses the stray member", func() error {
		if !strings.Contains(ms[0].Log()+ms[1].Log(), "refused raft messages from another cluster") {
			return errors.New("no refusal logged")
		}
		return nil
	})
	if stray.Healthy() {
		t.Fatal("a member of another cluster became healthy")
	}
	// The stray may have been the leader: a write can need a retry while
	// the others elect a new one.
	putRetrying(ctx, t, client(t, ms[0].Endpoint, ms[1].Endpoint), "still-serving")
}

// TestMajorityLoss: with two of three members dead the survivor refuses
// writes and linearizable reads with an error instead of hanging, and
// nothing it refused shows up once the others return.
func TestMajorityLoss(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ms[1].Kill()
	ms[2].Kill()
	c := client(t, ms[0].Endpoint)
	eventually(t, 10*time.Second, "the survivor loses its leader", func() error {
		st, err := c.Status(ctx, ms[0].Endpoint)
		if err == nil && st.Leader != 0 {
			err = fmt.Errorf("leader %x", st.Leader)
		}
		return err
	})
	for _, tc := range []struct {
		name string
		call func(context.Context) error
	}{
		{"put", func(ctx context.Context) error { _, err := c.Put(ctx, "lost", "v"); return err }},
		{"linearizable get", func(ctx context.Context) error { _, err := c.Get(ctx, "lost"); return err }},
	} {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		err := tc.call(cctx)
		ccancel()
		if err == nil {
			t.Fatalf("%s without a quorum succeeded", tc.name)
		}
		// clientv3 retries a read that failed with "no leader" until its
		// deadline, so only the write shows the server's error.
		if tc.name == "put" && !strings.Contains(err.Error(), "etcdserver:") {
			t.Errorf("%s without a quorum: %v, want an etcdserver error", tc.name, err)
		}
		t.Logf("%s failed after %v: %v", tc.name, time.Since(start).Round(time.Millisecond), err)
	}
	ms[1].Launch()
	ms[2].Launch()
	for _, m := range ms {
		m.WaitHealthy(30 * time.Second)
	}
	resp, err := c.Get(ctx, "lost")
	if err != nil || resp.Count != 0 {
		t.Fatalf("a refused write appeared: %v %v", resp, err)
	}
}

// TestPartitionedMemberConverges: a member cut off from its peers'
// messages refuses linearizable reads while the majority keeps taking
// writes; once healed it catches up to the same history.
func TestPartitionedMemberConverges(t *testing.T) {
	ms, proxies := framework.StartKvdClusterBehindProxies(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Cut off a follower, so the test does not also wait for an election.
	iso := followerOf(ctx, t, ms)
	proxies[iso].Cut()
	majority := []string{}
	for i, m := range ms {
		if i != iso {
			majority = append(majority, m.Endpoint)
		}
	}
	c := client(t, majority...)
	for i := range 50 {
		if _, err := c.Put(ctx, fmt.Sprintf("p/%02d", i), "v"); err != nil {
			t.Fatalf("majority write %d: %v", i, err)
		}
	}
	isolated := client(t, ms[iso].Endpoint)
	eventually(t, 15*time.Second, "the isolated member refuses linearizable reads", func() error {
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
		defer rcancel()
		if _, err := isolated.Get(rctx, "p/00"); err == nil {
			return errors.New("linearizable read served")
		}
		return nil
	})
	proxies[iso].Heal()
	last, err := c.Put(ctx, "healed", "v")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the healed member converges", func() error {
		n, err := countOn(ctx, t, ms[iso], "p/")
		if err == nil && n != 50 {
			return fmt.Errorf("%d keys", n)
		}
		if err != nil {
			return err
		}
		return hashesAgree(ctx, t, ms, last.Header.Revision)
	})
}

// TestRequireLeaderOnCutOffMember: clients that ask for a leader
// (clientv3.WithRequireLeader) are refused by a member cut off from its
// peers, and their watches there end with "no leader" so that they can
// move to the majority; other watches there stay open, as with etcd.
func TestRequireLeaderOnCutOffMember(t *testing.T) {
	ms, proxies := framework.StartKvdClusterBehindProxies(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	iso := followerOf(ctx, t, ms)
	c := client(t, ms[iso].Endpoint)
	required := c.Watch(clientv3.WithRequireLeader(ctx), "w", clientv3.WithCreatedNotify())
	plain := c.Watch(ctx, "w", clientv3.WithCreatedNotify())
	for _, wc := range []clientv3.WatchChan{required, plain} {
		if r := <-wc; !r.Created {
			t.Fatalf("first watch response %+v, want created", r)
		}
	}
	// kvd's own client library behaves as clientv3.
	kc := kvdClient(t, ms[iso].Endpoint)
	kvdRequired := kc.Watch(kvdclient.WithRequireLeader(ctx), "w", kvdclient.WithCreatedNotify())
	if r := <-kvdRequired; !r.Created {
		t.Fatalf("first watch response %+v, want created", r)
	}
	if _, err := c.Get(clientv3.WithRequireLeader(ctx), "w"); err != nil {
		t.Fatalf("read requiring a leader, with one: %v", err)
	}
	cut := time.Now()
	proxies[iso].Cut()
	select {
	case r := <-required:
		if !r.Canceled || !errors.Is(r.Err(), rpctypes.ErrNoLeader) {
			t.Fatalf("watch requiring a leader ended with %+v (%v), want canceled with no leader", r, r.Err())
		}
		t.Logf("watch requiring a leader ended %v after the cut", time.Since(cut).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("watch requiring a leader still open 20s after its member was cut off")
	}
	select {
	case r := <-kvdRequired:
		if !r.Canceled || !errors.Is(r.Err(), rpctypes.ErrNoLeader) {
			t.Fatalf("pkg/client watch requiring a leader ended with %+v (%v), want canceled with no leader", r, r.Err())
		}
		if _, ok := <-kvdRequired; ok {
			t.Fatal("pkg/client watch channel open after its cancellation")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pkg/client watch requiring a leader still open")
	}
	select {
	case r := <-plain:
		t.Fatalf("watch without require-leader got %+v (%v)", r, r.Err())
	default:
	}
	// "no leader" is Unavailable, which clientv3 retries until the
	// deadline.
	rctx, rcancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 2*time.Second)
	defer rcancel()
	if _, err := c.Get(rctx, "w", clientv3.WithSerializable()); err == nil {
		t.Fatal("serializable read requiring a leader served without one")
	}
	if _, err := c.Get(ctx, "w", clientv3.WithSerializable()); err != nil {
		t.Fatalf("serializable read without require-leader: %v", err)
	}
}
