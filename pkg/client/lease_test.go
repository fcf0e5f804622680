package client

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestLeaseAgainstServers runs the lease calls against kvd and a real
// etcd v3.7.3, each subtest with its own leases and keys.
func TestLeaseAgainstServers(t *testing.T) {
	for name, start := range map[string]func(testing.TB, ...string) *framework.Member{
		"etcd": framework.StartEtcd,
		"kvd":  framework.StartKvd,
	} {
		t.Run(name, func(t *testing.T) {
			m := start(t)
			c := newTestClient(t, Config{Endpoints: []string{m.Endpoint}})
			for _, tt := range []struct {
				name string
				fn   func(*testing.T, *Client)
			}{
				{"RoundTrip", testLeaseRoundTrip},
				{"Errors", testLeaseErrors},
				{"KeepAliveOnce", testKeepAliveOnce},
				{"KeepAlive", testKeepAlive},
				{"KeepAliveContexts", testKeepAliveContexts},
				{"KeepAliveClientEnds", testKeepAliveClientEnds},
			} {
				t.Run(tt.name, func(t *testing.T) { tt.fn(t, c) })
			}
		})
	}
}

// testLeaseRoundTrip: a granted lease is listed, reports its TTL and
// keys, and revoking it deletes its keys and nothing else.
func testLeaseRoundTrip(t *testing.T, c *Client) {
	ctx := testCtx(t)
	g := try(c.Grant(ctx, 60)).must(t)
	if g.ID == NoLease || g.TTL != 60 {
		t.Fatalf("grant: %v", g)
	}
	const chosen LeaseID = 0x7e57
	if r := try(c.Grant(ctx, 30, WithLeaseID(chosen))).must(t); r.ID != chosen || r.TTL != 30 {
		t.Fatalf("grant with a chosen ID: %v", r)
	}
	try(c.Put(ctx, "/lease/a", "1", WithLease(g.ID))).must(t)
	try(c.Put(ctx, "/lease/b", "2", WithLease(g.ID))).must(t)
	try(c.Put(ctx, "/lease/c", "3", WithLease(chosen))).must(t)

	ttl := try(c.TimeToLive(ctx, g.ID, WithAttachedKeys())).must(t)
	var attached []string
	for _, k := range ttl.Keys {
		attached = append(attached, string(k))
	}
	slices.Sort(attached)
	if ttl.ID != g.ID || ttl.GrantedTTL != 60 || ttl.TTL <= 0 || ttl.TTL > 60 ||
		!slices.Equal(attached, []string{"/lease/a", "/lease/b"}) {
		t.Fatalf("time to live: %v", ttl)
	}
	if r := try(c.TimeToLive(ctx, g.ID)).must(t); len(r.Keys) != 0 {
		t.Fatalf("time to live without WithAttachedKeys listed keys: %v", r.Keys)
	}
	if ids := leaseIDs(t, c); !slices.Contains(ids, g.ID) || !slices.Contains(ids, chosen) {
		t.Fatalf("leases %v lack %x or %x", ids, g.ID, chosen)
	}

	try(c.Revoke(ctx, g.ID)).must(t)
	if got := keys(try(c.Get(ctx, "/lease/", WithPrefix())).must(t)); got != "/lease/c" {
		t.Fatalf("keys after revoking %x: %q, want only /lease/c", g.ID, got)
	}
	if r := try(c.TimeToLive(ctx, g.ID)).must(t); r.TTL != -1 {
		t.Fatalf("time to live of a revoked lease: %v", r)
	}
	if ids := leaseIDs(t, c); slices.Contains(ids, g.ID) {
		t.Fatalf("revoked lease %x still listed: %v", g.ID, ids)
	}
	try(c.Revoke(ctx, chosen)).must(t)
}

func leaseIDs(t *testing.T, c *Client) []LeaseID {
	t.Helper()
	var ids []LeaseID
	for _, l := range try(c.Leases(testCtx(t))).must(t).Leases {
		ids = append(ids, l.ID)
	}
	return ids
}

// testLeaseErrors: each refusal carries etcd's error.
func testLeaseErrors(t *testing.T, c *Client) {
	ctx := testCtx(t)
	taken := try(c.Grant(ctx, 60)).must(t).ID
	const missing LeaseID = 0x5eed
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"revoke a missing lease", func() error { _, err := c.Revoke(ctx, missing); return err }, rpctypes.ErrLeaseNotFound},
		{"grant a taken ID", func() error { _, err := c.Grant(ctx, 60, WithLeaseID(taken)); return err }, rpctypes.ErrLeaseExist},
		{"grant too long a TTL", func() error { _, err := c.Grant(ctx, 9_000_000_001); return err }, rpctypes.ErrLeaseTTLTooLarge},
		{"put with a missing lease", func() error { _, err := c.Put(ctx, "/lease/x", "v", WithLease(missing)); return err }, rpctypes.ErrLeaseNotFound},
		{"keep a missing lease alive once", func() error { _, err := c.KeepAliveOnce(ctx, missing); return err }, rpctypes.ErrLeaseNotFound},
	}
	for _, tt := range tests {
		err := tt.call()
		if !errors.Is(err, tt.want) || err.Error() != tt.want.Error() {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	try(c.Revoke(ctx, taken)).must(t)
}

// testKeepAliveOnce: one renewal restores the granted TTL.
func testKeepAliveOnce(t *testing.T, c *Client) {
	ctx := testCtx(t)
	id := try(c.Grant(ctx, 10)).must(t).ID
	time.Sleep(1100 * time.Millisecond)
	if r := try(c.TimeToLive(ctx, id)).must(t); r.TTL >= 10 {
		t.Fatalf("TTL %d a second after the grant", r.TTL)
	}
	r := try(c.KeepAliveOnce(ctx, id)).must(t)
	if r.ID != id || r.TTL != 10 || r.Header.GetRevision() == 0 {
		t.Fatalf("keep alive once: %v", r)
	}
	if r := try(c.TimeToLive(ctx, id)).must(t); r.TTL < 9 {
		t.Fatalf("TTL %d right after a renewal", r.TTL)
	}
	try(c.Revoke(ctx, id)).must(t)
}

// testKeepAlive keeps a 2 s lease and its key alive for three TTLs, then
// revokes it: the channel closes, as the next renewal finds it gone.
func testKeepAlive(t *testing.T, c *Client) {
	ctx := testCtx(t)
	const ttl = 2
	id := try(c.Grant(ctx, ttl)).must(t).ID
	try(c.Put(ctx, "/lease/kept", "v", WithLease(id))).must(t)
	ch := try(c.KeepAlive(watchCtx(t), id)).must(t)

	answers := 0
	end := time.After(3 * ttl * time.Second)
kept:
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d answers", answers)
			}
			if r.ID != id || r.TTL != ttl {
				t.Fatalf("answer %v", r)
			}
			answers++
		case <-end:
			break kept
		}
	}
	// A renewal every third of the TTL, sent on a half-second tick: about
	// one a second.
	if answers < 4 {
		t.Fatalf("%d renewals in %d s of a %d s lease", answers, 3*ttl, ttl)
	}
	if r := try(c.Get(ctx, "/lease/kept")).must(t); len(r.Kvs) != 1 {
		t.Fatal("the kept lease's key is gone")
	}
	try(c.Revoke(ctx, id)).must(t)
	waitClosed(t, ch, 3*time.Second)
}

// waitClosed drains ch until it closes, failing after d.
func waitClosed(t *testing.T, ch <-chan *LeaseKeepAliveResponse, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("keep-alive channel still open after %v", d)
		}
	}
}

// testKeepAliveContexts: two KeepAlive calls on one lease each get every
// answer; ending one's ctx closes only its channel.
func testKeepAliveContexts(t *testing.T, c *Client) {
	ctx := testCtx(t)
	id := try(c.Grant(ctx, 3)).must(t).ID
	ctx1, cancel1 := context.WithCancel(ctx)
	defer cancel1()
	ctx2, cancel2 := context.WithCancel(WithRequireLeader(ctx))
	defer cancel2()
	ch1 := try(c.KeepAlive(ctx1, id)).must(t)
	ch2 := try(c.KeepAlive(ctx2, id)).must(t)
	for _, ch := range []<-chan *LeaseKeepAliveResponse{ch1, ch2} {
		if r := nextAnswer(t, ch); r.ID != id {
			t.Fatalf("answer for lease %x, want %x", r.ID, id)
		}
	}
	cancel1()
	waitClosed(t, ch1, time.Second)
	if r := nextAnswer(t, ch2); r.ID != id {
		t.Fatalf("answer for lease %x, want %x", r.ID, id)
	}
	cancel2()
	waitClosed(t, ch2, time.Second)

	done, cancel := context.WithCancel(ctx)
	cancel()
	ch, err := c.KeepAlive(done, id)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("keep alive with an ended ctx: %v", err)
	}
	waitClosed(t, ch, time.Second)
	try(c.Revoke(ctx, id)).must(t)
}

func nextAnswer(t *testing.T, ch <-chan *LeaseKeepAliveResponse) *LeaseKeepAliveResponse {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("keep-alive channel closed")
		}
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no keep-alive answer in 5s")
	}
	return nil
}

// testKeepAliveClientEnds: closing the client, or ending its
// Config.Context, closes every keep-alive channel, and KeepAlive refuses
// to start more.
func testKeepAliveClientEnds(t *testing.T, c *Client) {
	ep := c.Endpoints()[0]
	for _, tt := range []struct {
		name string
		end  func(*Client, context.CancelFunc)
	}{
		{"Close", func(c *Client, _ context.CancelFunc) { c.Close() }},
		{"Context", func(_ *Client, cancel context.CancelFunc) { cancel() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			parent, cancel := context.WithCancel(context.Background())
			defer cancel()
			other := newTestClient(t, Config{Endpoints: []string{ep}, Context: parent})
			id := try(other.Grant(testCtx(t), 10)).must(t).ID
			ch := try(other.KeepAlive(context.Background(), id)).must(t)
			nextAnswer(t, ch)
			tt.end(other, cancel)
			waitClosed(t, ch, 2*time.Second)
			ch, err := other.KeepAlive(context.Background(), id)
			if err == nil {
				t.Fatal("keep alive on an ended client was accepted")
			}
			waitClosed(t, ch, time.Second)
			try(c.Revoke(testCtx(t), id)).must(t)
		})
	}
}

// TestKeepAliveGivesUpWithoutAnswer: with no endpoint reachable, a
// keep-alive channel closes once the wait for a first answer (dial
// timeout plus a second) is over, as the lease may have expired.
func TestKeepAliveGivesUpWithoutAnswer(t *testing.T) {
	c := newTestClient(t, Config{Endpoints: []string{deadEndpoint(t)}, DialTimeout: 200 * time.Millisecond})
	start := time.Now()
	ch := try(c.KeepAlive(context.Background(), 0x5eed)).must(t)
	waitClosed(t, ch, 5*time.Second)
	if d := time.Since(start); d < time.Second {
		t.Fatalf("channel closed after %v, before the 1.2s wait", d)
	}
}

// TestLeaseKeepAliveFailOver keeps a lease alive on a three-member
// cluster, of etcd and of kvd, while killing the member its keep-alive
// stream is on, twice (the first victim is back before the second kill):
// each time the renewals go on through another member, the channel never
// closes, and the lease and its key outlive the kills by more than a TTL.
func TestLeaseKeepAliveFailOver(t *testing.T) {
	for name, bin := range map[string]func(testing.TB) string{
		"etcd": func(t testing.TB) string { return framework.RequireBin(t, framework.EtcdBin()) },
		"kvd":  framework.KvdBin,
	} {
		t.Run(name, func(t *testing.T) { testLeaseKeepAliveFailOver(t, bin(t)) })
	}
}

func testLeaseKeepAliveFailOver(t *testing.T, bin string) {
	ms := framework.StartCluster(t, bin, 3)
	var eps []string
	for _, m := range ms {
		eps = append(eps, m.Endpoint)
	}
	c := newTestClient(t, Config{Endpoints: eps, DialTimeout: time.Second})
	ctx := testCtx(t)
	const ttl = 4
	id := try(c.Grant(ctx, ttl)).must(t).ID
	try(c.Put(ctx, "/failover/k", "v", WithLease(id))).must(t)
	ch := try(c.KeepAlive(watchCtx(t), id)).must(t)
	names := memberNames(t, c)

	for round := range 2 {
		from := nextAnswer(t, ch).Header.GetMemberId()
		var victim *framework.Member
		for _, m := range ms {
			if m.Name == names[from] {
				victim = m
			}
		}
		if victim == nil {
			t.Fatalf("round %d: no member with the stream's member ID %x", round, from)
		}
		victim.Kill()
		killed := time.Now()
		moved := false
		for time.Since(killed) < (ttl+1)*time.Second {
			r := nextAnswer(t, ch)
			if r.Header.GetMemberId() == from {
				continue // answered before the kill
			}
			if r.TTL != ttl {
				t.Fatalf("round %d: answer %v", round, r)
			}
			moved = true
		}
		if !moved {
			t.Fatalf("round %d: no answer from another member after killing %s", round, victim.Name)
		}
		if r := try(c.TimeToLive(testCtx(t), id)).must(t); r.TTL <= 0 {
			t.Fatalf("round %d: lease gone after the kill: %v", round, r)
		}
		victim.Start()
	}
	if r := try(c.Get(testCtx(t), "/failover/k")).must(t); len(r.Kvs) != 1 {
		t.Fatal("the lease's key is gone")
	}
}

// memberNames maps member IDs to names.
func memberNames(t *testing.T, c *Client) map[uint64]string {
	t.Helper()
	names := map[uint64]string{}
	for _, m := range try(c.MemberList(testCtx(t))).must(t).Members {
		names[m.ID] = m.Name
	}
	return names
}
