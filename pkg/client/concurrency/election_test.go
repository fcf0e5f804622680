package concurrency_test

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	etcdconc "go.etcd.io/etcd/client/v3/concurrency"

	"github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/pkg/client/concurrency"
)

// testElection runs one election with candidates of both packages: each
// leads in turn, in campaign order, as the one before resigns, and an
// observer of each package sees every leader and every proclaimed value,
// in order.
func testElection(t *testing.T, e *env) {
	const pfx = "/elect"
	c := e.client(t)
	ctx := testCtx(t)
	obsCtx, stopObserving := context.WithCancel(ctx)
	defer stopObserving()
	ours := concurrency.NewElection(e.session(t), pfx).Observe(obsCtx)
	theirs := etcdconc.NewElection(e.etcdSession(t), pfx).Observe(obsCtx)
	observed := func(want string) {
		t.Helper()
		if got := string(next(t, ours).Kvs[0].Value); got != want {
			t.Fatalf("our observer saw %q, want %q", got, want)
		}
		if got := string(next(t, theirs).Kvs[0].Value); got != want {
			t.Fatalf("clientv3's observer saw %q, want %q", got, want)
		}
	}

	first := concurrency.NewElection(e.session(t), pfx)
	must(t, first.Campaign(ctx, "a"))
	if l := leader(t, first); string(l.Kvs[0].Key) != first.Key() || l.Kvs[0].CreateRevision != first.Rev() {
		t.Fatalf("leader %v, want key %s created at %d", l.Kvs[0], first.Key(), first.Rev())
	}
	observed("a")
	must(t, first.Proclaim(ctx, "b"))
	observed("b")

	second := etcdconc.NewElection(e.etcdSession(t), pfx)
	secondWon := campaign(func() error { return second.Campaign(ctx, "c") })
	waitKeys(t, c, pfx+"/", 2)
	third := concurrency.NewElection(e.session(t), pfx)
	thirdWon := campaign(func() error { return third.Campaign(ctx, "d") })
	waitKeys(t, c, pfx+"/", 3)
	select {
	case err := <-secondWon:
		t.Fatalf("second candidate's campaign ended while the first leads: %v", err)
	case err := <-thirdWon:
		t.Fatalf("third candidate's campaign ended while the first leads: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	must(t, first.Resign(ctx))
	must(t, won(t, secondWon))
	observed("c")
	must(t, second.Proclaim(ctx, "c2"))
	observed("c2")
	if v := string(leader(t, first).Kvs[0].Value); v != "c2" {
		t.Fatalf("leader value %q, want c2", v)
	}
	must(t, second.Resign(ctx))
	must(t, won(t, thirdWon))
	observed("d")
	must(t, third.Resign(ctx))
	if _, err := third.Leader(ctx); !errors.Is(err, concurrency.ErrElectionNoLeader) {
		t.Fatalf("leader after everyone resigned: %v", err)
	}

	stopObserving()
	for _, done := range []func() bool{drained(ours), drained(theirs)} {
		if !done() {
			t.Fatal("observer channel still open after its context ended")
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func leader(t *testing.T, e *concurrency.Election) *client.GetResponse {
	t.Helper()
	r, err := e.Leader(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// campaign runs a blocking Campaign on a goroutine of its own.
func campaign(fn func() error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return done
}

func won(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("campaign still waiting 5s after the leader resigned")
	}
	return nil
}

// observation is a leader response from either package's Observe.
type observation interface {
	*client.GetResponse | *clientv3.GetResponse
}

func next[R observation](t *testing.T, ch <-chan R) *client.GetResponse {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("observer channel closed")
		}
		return (*client.GetResponse)(r)
	case <-time.After(5 * time.Second):
		t.Fatal("observer saw nothing in 5s")
	}
	return nil
}

// drained reports, when called, whether ch closed within 5s.
func drained[R observation](ch <-chan R) func() bool {
	return func() bool {
		timeout := time.After(5 * time.Second)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return true
				}
			case <-timeout:
				return false
			}
		}
	}
}

// testElectionErrors: calls out of turn fail with etcd's errors, and a
// candidate campaigning again keeps its place with its new value.
func testElectionErrors(t *testing.T, e *env) {
	c := e.client(t)
	ctx := testCtx(t)
	el := concurrency.NewElection(e.session(t), "/elect-errors")
	if _, err := el.Leader(ctx); !errors.Is(err, concurrency.ErrElectionNoLeader) || err.Error() != "election: no leader" {
		t.Fatalf("leader of an empty election: %v", err)
	}
	if err := el.Proclaim(ctx, "x"); !errors.Is(err, concurrency.ErrElectionNotLeader) || err.Error() != "election: not leader" {
		t.Fatalf("proclaim without campaigning: %v", err)
	}
	must(t, el.Resign(ctx)) // nothing to resign from
	must(t, el.Campaign(ctx, "x"))
	key, rev := el.Key(), el.Rev()
	must(t, el.Campaign(ctx, "y"))
	if l := leader(t, el); string(l.Kvs[0].Value) != "y" || el.Key() != key || el.Rev() != rev {
		t.Fatalf("after campaigning again: leader %v, key %s rev %d, was %s %d", l.Kvs[0], el.Key(), el.Rev(), key, rev)
	}
	if _, err := c.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := el.Proclaim(ctx, "z"); !errors.Is(err, concurrency.ErrElectionNotLeader) {
		t.Fatalf("proclaim after the leader key was deleted: %v", err)
	}
	if concurrency.ErrElectionNotExist.Error() != "election: not exist" {
		t.Fatalf("ErrElectionNotExist says %q", concurrency.ErrElectionNotExist)
	}
}

// testCampaignCanceled: a campaign that waits past its ctx fails with the
// ctx's error and withdraws its key.
func testCampaignCanceled(t *testing.T, e *env) {
	c := e.client(t)
	leaderEl := concurrency.NewElection(e.session(t), "/elect-canceled")
	must(t, leaderEl.Campaign(testCtx(t), "leader"))
	waiter := concurrency.NewElection(e.session(t), "/elect-canceled")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := waiter.Campaign(ctx, "waiter"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("campaign past its deadline: %v", err)
	}
	if ks := keysUnder(t, c, "/elect-canceled/"); len(ks) != 1 || ks[0] != leaderEl.Key() {
		t.Fatalf("keys %v, want only the leader's %s", ks, leaderEl.Key())
	}
	if waiter.Key() != "" {
		t.Fatalf("withdrawn candidate still has key %q", waiter.Key())
	}
}

// testResumeElection: a new Election resumed from a leader's key and
// revision can proclaim and resign for it.
func testResumeElection(t *testing.T, e *env) {
	ctx := testCtx(t)
	s := e.session(t)
	el := concurrency.NewElection(s, "/elect-resume")
	must(t, el.Campaign(ctx, "before"))
	resumed := concurrency.ResumeElection(s, "/elect-resume", el.Key(), el.Rev())
	must(t, resumed.Proclaim(ctx, "after"))
	if l := leader(t, resumed); string(l.Kvs[0].Value) != "after" {
		t.Fatalf("leader value %q after the resumed election proclaimed", l.Kvs[0].Value)
	}
	must(t, resumed.Resign(ctx))
	if _, err := el.Leader(ctx); !errors.Is(err, concurrency.ErrElectionNoLeader) {
		t.Fatalf("leader after the resumed election resigned: %v", err)
	}
}
