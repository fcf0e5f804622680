package concurrency_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	etcdconc "go.etcd.io/etcd/client/v3/concurrency"

	"github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/pkg/client/concurrency"
)

// locker is what our Mutex and clientv3's have in common.
type locker interface {
	Lock(context.Context) error
	TryLock(context.Context) error
	Unlock(context.Context) error
	Key() string
}

// lockKind makes a Mutex of one package on pfx, with a session of its own.
type lockKind struct {
	name   string
	mutex  func(t *testing.T, e *env, pfx string) locker
	locked error // what TryLock answers when someone else holds the lock
}

var lockKinds = []lockKind{
	{"ours", func(t *testing.T, e *env, pfx string) locker {
		return concurrency.NewMutex(e.session(t, concurrency.WithTTL(10)), pfx)
	}, concurrency.ErrLocked},
	{"clientv3", func(t *testing.T, e *env, pfx string) locker {
		return etcdconc.NewMutex(e.etcdSession(t, etcdconc.WithTTL(10)), pfx)
	}, etcdconc.ErrLocked},
}

// testMutexExcludes: goroutines holding our Mutex and clientv3's on one
// prefix take turns. Inside the lock each checks it is alone and bumps a
// counter kept in the store by a read and a later write, which would
// lose increments if two ever overlapped.
func testMutexExcludes(t *testing.T, e *env) {
	const (
		perKind = 3
		rounds  = 4
		pfx     = "/mutex-excludes"
		counter = "/mutex-excludes-counter"
	)
	c := e.client(t)
	var (
		holders atomic.Int32
		wg      sync.WaitGroup
	)
	errc := make(chan error, 2*perKind*rounds)
	for _, kind := range lockKinds {
		for i := range perKind {
			m := kind.mutex(t, e, pfx)
			name := fmt.Sprintf("%s %d", kind.name, i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					if err := lockedIncrement(m, c, counter, &holders); err != nil {
						errc <- fmt.Errorf("%s: %w", name, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if got := readCounter(t, c, counter); got != 2*perKind*rounds {
		t.Fatalf("counter %d after %d locked increments", got, 2*perKind*rounds)
	}
	if ks := keysUnder(t, c, pfx+"/"); len(ks) != 0 {
		t.Fatalf("keys left under the lock: %v", ks)
	}
}

func lockedIncrement(m locker, c *client.Client, key string, holders *atomic.Int32) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Lock(ctx); err != nil {
		return err
	}
	err := increment(ctx, c, key, holders)
	if uerr := m.Unlock(ctx); err == nil {
		err = uerr
	}
	return err
}

// increment runs under the lock: it counts itself among the holders and
// bumps the counter key.
func increment(ctx context.Context, c *client.Client, key string, holders *atomic.Int32) error {
	if n := holders.Add(1); n != 1 {
		return fmt.Errorf("%d holders at once", n)
	}
	defer holders.Add(-1)
	r, err := c.Get(ctx, key)
	if err != nil {
		return err
	}
	n := 0
	if len(r.Kvs) > 0 {
		n, _ = strconv.Atoi(string(r.Kvs[0].Value))
	}
	time.Sleep(5 * time.Millisecond) // widen the window a second holder would need
	_, err = c.Put(ctx, key, strconv.Itoa(n+1))
	return err
}

func readCounter(t *testing.T, c *client.Client, key string) int {
	t.Helper()
	r, err := c.Get(testCtx(t), key)
	if err != nil || len(r.Kvs) == 0 {
		t.Fatalf("counter: %v %v", r, err)
	}
	n, _ := strconv.Atoi(string(r.Kvs[0].Value))
	return n
}

// testTryLock: TryLock fails with ErrLocked while a Mutex of either
// package holds the lock, leaving no key behind, and succeeds once it is
// released.
func testTryLock(t *testing.T, e *env) {
	c := e.client(t)
	ctx := testCtx(t)
	for _, holderKind := range lockKinds {
		for _, trierKind := range lockKinds {
			name := holderKind.name + " holds, " + trierKind.name + " tries"
			pfx := "/trylock/" + holderKind.name + "-" + trierKind.name
			holder, trier := holderKind.mutex(t, e, pfx), trierKind.mutex(t, e, pfx)
			if err := holder.Lock(ctx); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := trier.TryLock(ctx); !errors.Is(err, trierKind.locked) || err.Error() != "mutex: Locked by another session" {
				t.Fatalf("%s: TryLock %v, want %v", name, err, trierKind.locked)
			}
			if ks := keysUnder(t, c, pfx+"/"); len(ks) != 1 || ks[0] != holder.Key() {
				t.Fatalf("%s: keys %v after the failed TryLock, want only %s", name, ks, holder.Key())
			}
			if err := holder.Unlock(ctx); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := trier.TryLock(ctx); err != nil {
				t.Fatalf("%s: TryLock of a free lock: %v", name, err)
			}
			if err := trier.Unlock(ctx); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
}

// testSameLeaseSameKey: a clientv3 Mutex on a session sharing our
// session's lease finds the lock already its own: both packages name the
// waiter's key prefix/lease-in-hex.
func testSameLeaseSameKey(t *testing.T, e *env) {
	ctx := testCtx(t)
	s := e.session(t)
	ours := concurrency.NewMutex(s, "/same-lease")
	if err := ours.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("/same-lease/%x", s.Lease()); ours.Key() != want {
		t.Fatalf("key %q, want %q", ours.Key(), want)
	}
	theirs := etcdconc.NewMutex(e.etcdSession(t, etcdconc.WithLease(clientv3.LeaseID(s.Lease()))), "/same-lease")
	if err := theirs.TryLock(ctx); err != nil || theirs.Key() != ours.Key() {
		t.Fatalf("clientv3 TryLock on the same lease: %v, key %q, ours %q", err, theirs.Key(), ours.Key())
	}
	if err := ours.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// testLockCanceled: a Lock that waits past its ctx fails with the ctx's
// error and takes its key out of the line.
func testLockCanceled(t *testing.T, e *env) {
	c := e.client(t)
	holder := concurrency.NewMutex(e.session(t), "/lock-canceled")
	if err := holder.Lock(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	waiter := concurrency.NewMutex(e.session(t), "/lock-canceled")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := waiter.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock past its deadline: %v", err)
	}
	if ks := keysUnder(t, c, "/lock-canceled/"); len(ks) != 1 || ks[0] != holder.Key() {
		t.Fatalf("keys %v, want only the holder's %s", ks, holder.Key())
	}
	if err := waiter.Unlock(testCtx(t)); !errors.Is(err, concurrency.ErrLockReleased) {
		t.Fatalf("Unlock of a lock never taken: %v", err)
	}
}

// testLockSessionExpired: a waiter whose lease is revoked while it waits
// is told so once its turn comes.
func testLockSessionExpired(t *testing.T, e *env) {
	c := e.client(t)
	ctx := testCtx(t)
	holder := concurrency.NewMutex(e.session(t), "/lock-expired")
	if err := holder.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	// A short TTL: the session notices the revoke at its next renewal.
	ws := e.session(t, concurrency.WithTTL(2))
	waiter := concurrency.NewMutex(ws, "/lock-expired")
	errc := make(chan error, 1)
	go func() { errc <- waiter.Lock(ctx) }()
	waitKeys(t, c, "/lock-expired/", 2)
	if _, err := c.Revoke(ctx, ws.Lease()); err != nil {
		t.Fatal(err)
	}
	if err := holder.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, concurrency.ErrSessionExpired) {
			t.Fatalf("Lock of a revoked session: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock of a revoked session still waiting after 5s")
	}
	waitDone(t, ws.Done(), "session of a revoked lease")
}

// testIsOwner: a txn guarded by IsOwner runs only while the lock is held.
func testIsOwner(t *testing.T, e *env) {
	c := e.client(t)
	ctx := testCtx(t)
	m := concurrency.NewMutex(e.session(t), "/is-owner")
	guarded := func() bool {
		t.Helper()
		r, err := c.Txn(ctx).If(m.IsOwner()).Then(client.OpPut("/is-owner-data", "x")).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return r.Succeeded
	}
	if guarded() {
		t.Fatal("guarded txn ran before Lock")
	}
	if err := m.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if !guarded() || m.Header().GetRevision() == 0 {
		t.Fatalf("guarded txn did not run while locked (header %v)", m.Header())
	}
	if err := m.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if guarded() {
		t.Fatal("guarded txn ran after Unlock")
	}
}
