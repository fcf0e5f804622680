package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// leaderOf is the index of the member that leads, as ms[0] sees it.
func leaderOf(ctx context.Context, t *testing.T, ms []*framework.Member) int {
	t.Helper()
	for range 50 {
		for i, m := range ms {
			st, err := client(t, m.Endpoint).Status(ctx, m.Endpoint)
			if err == nil && st.Leader == st.Header.MemberId {
				return i
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no member leads")
	return -1
}

// presence polls a key through a client and records when it was last seen
// and first missed, so a test can tell when a lease's key went.
type presence struct {
	mu       sync.Mutex
	seen     time.Time // last read that found it
	missing  time.Time // first read that did not
	failures int       // reads that failed (a member down, no leader)
}

func watchPresence(ctx context.Context, c *clientv3.Client, key string) *presence {
	p := &presence{}
	go func() {
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			resp, err := c.Get(rctx, key)
			cancel()
			p.mu.Lock()
			switch {
			case err != nil:
				p.failures++
			case resp.Count == 1:
				p.seen = time.Now()
			case p.missing.IsZero():
				p.missing = time.Now()
			}
			p.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return p
}

func (p *presence) gone() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.missing, !p.missing.IsZero()
}

// TestLeaseTTLOnCluster: on a 3-member cluster, a key whose lease is no
// longer kept alive goes no sooner than its TTL and not much later, and a
// key whose lease is kept alive never goes, also while the leader is
// killed or cut off (the new leader gives every lease an election's
// grace, and keep-alives reach whichever member leads).
func TestLeaseTTLOnCluster(t *testing.T) {
	const ttl = 5
	faults := []struct {
		name  string
		apply func(ms []*framework.Member, proxies []*framework.Proxy, leader int) (heal func())
	}{
		{"no fault", func([]*framework.Member, []*framework.Proxy, int) func() { return func() {} }},
		{"leader killed", func(ms []*framework.Member, _ []*framework.Proxy, leader int) func() {
			ms[leader].Kill()
			return ms[leader].Start
		}},
		{"leader cut off", func(_ []*framework.Member, proxies []*framework.Proxy, leader int) func() {
			proxies[leader].Cut()
			return proxies[leader].Heal
		}},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			ms, proxies := framework.StartKvdClusterBehindProxies(t, 3)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			leader := leaderOf(ctx, t, ms)
			var others []string
			for i, m := range ms {
				if i != leader {
					others = append(others, m.Endpoint)
				}
			}
			c := client(t, strings.Split(framework.Endpoints(ms), ",")...)
			kept, err := c.Grant(ctx, ttl)
			if err != nil {
				t.Fatal(err)
			}
			granted := time.Now()
			dropped, err := c.Grant(ctx, ttl)
			if err != nil {
				t.Fatal(err)
			}
			for key, id := range map[string]clientv3.LeaseID{"kept": kept.ID, "dropped": dropped.ID} {
				if _, err := c.Put(ctx, key, "v", clientv3.WithLease(id)); err != nil {
					t.Fatal(err)
				}
			}
			kactx, kacancel := context.WithCancel(ctx)
			defer kacancel()
			if _, err := c.KeepAlive(kactx, kept.ID); err != nil {
				t.Fatal(err)
			}
			// Reads go to the members that stay up, so a fault does not
			// hide what they show.
			reader := client(t, others...)
			keptSeen := watchPresence(kactx, reader, "kept")
			droppedSeen := watchPresence(kactx, reader, "dropped")

			time.Sleep(time.Second)
			heal := f.apply(ms, proxies, leader)
			time.Sleep(4 * time.Second)
			heal()
			deadline := granted.Add((ttl + 6) * time.Second)
			for {
				if _, ok := droppedSeen.gone(); ok || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			at, ok := droppedSeen.gone()
			if !ok {
				t.Fatalf("key of a lease not kept alive still there %v after its %ds TTL", time.Since(granted), ttl)
			}
			if lived := at.Sub(granted); lived < ttl*time.Second {
				t.Fatalf("key of a lease not kept alive gone after %v, before its %ds TTL", lived, ttl)
			}
			t.Logf("key of the dropped lease went %v after the grant (TTL %ds)", at.Sub(granted).Round(100*time.Millisecond), ttl)
			time.Sleep(2 * time.Second) // the kept lease is now well past a TTL
			if at, ok := keptSeen.gone(); ok {
				t.Fatalf("key of a lease kept alive went at %v after the grant", at.Sub(granted))
			}
			kacancel()
			if _, err := c.Revoke(ctx, kept.ID); err != nil {
				t.Fatal(err)
			}
			if resp, err := c.Get(ctx, "kept"); err != nil || resp.Count != 0 {
				t.Fatalf("after revoke: %v %v", resp, err)
			}
		})
	}
}

// TestLeaseRevokeIsOneRevision: revoking a lease deletes all of its keys
// at one revision, and a watcher on another member sees them go in that
// revision.
func TestLeaseRevokeIsOneRevision(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := client(t, ms[0].Endpoint)
	watcher := client(t, ms[2].Endpoint)
	l, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := c.Put(ctx, fmt.Sprintf("r/%d", i), "v", clientv3.WithLease(l.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, "r/unleased", "v"); err != nil {
		t.Fatal(err)
	}
	wc := watcher.Watch(ctx, "r/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	<-wc
	rev, err := c.Revoke(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	var deletes []*mvccpb.KeyValue
	for len(deletes) < 5 {
		select {
		case wr := <-wc:
			for _, ev := range wr.Events {
				if ev.Type != mvccpb.DELETE {
					t.Fatalf("unexpected event %v", ev)
				}
				deletes = append(deletes, ev.Kv)
			}
		case <-ctx.Done():
			t.Fatalf("watcher saw %d deletes, want 5", len(deletes))
		}
	}
	for _, kv := range deletes {
		if kv.ModRevision != rev.Header.Revision {
			t.Errorf("%s deleted at revision %d, the revoke's is %d", kv.Key, kv.ModRevision, rev.Header.Revision)
		}
	}
	if resp, err := client(t, ms[1].Endpoint).Get(ctx, "r/", clientv3.WithPrefix()); err != nil || resp.Count != 1 {
		t.Fatalf("after revoke: %v %v, want only r/unleased", resp, err)
	}
}

// TestLeaseSurvivesWholeClusterRestart: a crash of every member keeps the
// leases and their keys, and each lease keeps the remaining TTL the last
// checkpoint recorded instead of starting its whole TTL again.
func TestLeaseSurvivesWholeClusterRestart(t *testing.T) {
	const ttl = 30
	ms := framework.StartKvdCluster(t, 3, "--lease-checkpoint-interval", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := client(t, strings.Split(framework.Endpoints(ms), ",")...)
	l, err := c.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "restart/key", "v", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	framework.CrashCluster(ms, 0)
	var resp *clientv3.LeaseTimeToLiveResponse
	eventually(t, 10*time.Second, "lease time to live after restart", func() error {
		var err error
		resp, err = c.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
		return err
	})
	// Checkpointed about 22s left; the new leader adds an election
	// timeout. A lease that got its whole TTL back would show 30.
	if resp.TTL > ttl-5 || resp.TTL < 10 || resp.GrantedTTL != ttl || len(resp.Keys) != 1 {
		t.Fatalf("after a whole-cluster restart the lease has %ds left of %d, keys %q; want about %d left", resp.TTL, resp.GrantedTTL, resp.Keys, ttl-8)
	}
	if g, err := c.Get(ctx, "restart/key"); err != nil || g.Count != 1 || g.Kvs[0].Lease != int64(l.ID) {
		t.Fatalf("leased key after restart: %v %v", g, err)
	}
}

// TestLeasesSurviveSnapshotAndCompaction: a follower that catches up from
// the leader's database, after a compaction, holds the same leases with
// the same keys, both once the database is installed and after it
// restarts from it: revoking a lease through it deletes the same keys on
// every member.
func TestLeasesSurviveSnapshotAndCompaction(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3, "--snapshot-count", "100", "--snapshot-catchup-entries", "10", "--log-level", "info")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lagging, rest := stopFollower(ctx, t, ms)
	c := client(t, rest[0].Endpoint, rest[1].Endpoint)
	leases := map[string]clientv3.LeaseID{}
	for _, name := range []string{"a", "b"} {
		l, err := c.Grant(ctx, 120)
		if err != nil {
			t.Fatal(err)
		}
		leases[name] = l.ID
		for i := range 5 {
			if _, err := c.Put(ctx, fmt.Sprintf("lk/%s/%d", name, i), "v", clientv3.WithLease(l.ID)); err != nil {
				t.Fatal(err)
			}
		}
		// A key put again without the lease is no longer the lease's.
		for _, id := range []clientv3.LeaseID{l.ID, clientv3.NoLease} {
			if _, err := c.Put(ctx, "lk/"+name+"/moved", "v", clientv3.WithLease(id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var last int64
	for i := range 200 {
		resp, err := c.Put(ctx, fmt.Sprintf("k/%03d", i), "v")
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Header.Revision
	}
	if _, err := c.Compact(ctx, last, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	lagging.Start()
	caughtUpBySnapshot(ctx, t, lagging, "k/", 200)
	revokeThrough := func(name string) {
		t.Helper()
		lc := client(t, lagging.Endpoint)
		ttl, err := lc.TimeToLive(ctx, leases[name], clientv3.WithAttachedKeys())
		if err != nil || len(ttl.Keys) != 5 || ttl.TTL <= 0 {
			t.Fatalf("time to live of lease %s through the lagging member: %+v %v", name, ttl, err)
		}
		rev, err := lc.Revoke(ctx, leases[name])
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "every member applied the revoke alike", func() error {
			for _, m := range ms {
				if n, err := countOn(ctx, t, m, "lk/"+name+"/"); err != nil || n != 1 {
					return fmt.Errorf("%s holds %d keys of lease %s (%v), want only the moved one", m.Name, n, name, err)
				}
			}
			return hashesAgree(ctx, t, ms, rev.Header.Revision)
		})
	}
	revokeThrough("a")
	lagging.Kill()
	lagging.Start()
	revokeThrough("b")
}

// TestLeaseRenewThroughFollower: a follower passes renewals and TTL
// questions to the leader, and answers with the TTL the leader granted;
// a follower's list of leases is its own.
func TestLeaseRenewThroughFollower(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader := leaderOf(ctx, t, ms)
	follower := ms[(leader+1)%len(ms)]
	l, err := client(t, ms[leader].Endpoint).Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	fc := client(t, follower.Endpoint)
	time.Sleep(1100 * time.Millisecond)
	before, err := fc.TimeToLive(ctx, l.ID)
	if err != nil || before.GrantedTTL != 30 || before.TTL >= 30 || before.TTL < 25 {
		t.Fatalf("time to live through a follower: %+v %v; want 30 granted, a little less left", before, err)
	}
	ka, err := fc.KeepAliveOnce(ctx, l.ID)
	if err != nil || ka.TTL != 30 {
		t.Fatalf("renewal through a follower: %+v %v", ka, err)
	}
	after, err := fc.TimeToLive(ctx, l.ID)
	if err != nil || after.TTL <= before.TTL {
		t.Fatalf("after the renewal the lease has %ds left, before it %ds", after.TTL, before.TTL)
	}
	if list, err := fc.Leases(ctx); err != nil || len(list.Leases) != 1 {
		t.Fatalf("leases through a follower: %v %v", list, err)
	}
	if _, err := fc.KeepAliveOnce(ctx, l.ID+1); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("renewal of an unknown lease through a follower: %v", err)
	}
}
