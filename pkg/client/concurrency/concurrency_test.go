package concurrency_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	etcdconc "go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/pkg/client/concurrency"
	"github.com/kvd-io/kvd/tests/framework"
)

// TestAgainstServers runs every session, lock and election test against
// kvd and a real etcd v3.7.3. The subtests share the server; each works
// under a prefix of its own.
func TestAgainstServers(t *testing.T) {
	for name, start := range map[string]func(testing.TB, ...string) *framework.Member{
		"etcd": framework.StartEtcd,
		"kvd":  framework.StartKvd,
	} {
		t.Run(name, func(t *testing.T) {
			e := &env{endpoint: start(t).Endpoint}
			for _, tt := range []struct {
				name string
				fn   func(*testing.T, *env)
			}{
				{"SessionOptions", testSessionOptions},
				{"SessionEnds", testSessionEnds},
				{"MutexExcludes", testMutexExcludes},
				{"TryLock", testTryLock},
				{"SameLeaseSameKey", testSameLeaseSameKey},
				{"LockCanceled", testLockCanceled},
				{"LockSessionExpired", testLockSessionExpired},
				{"IsOwner", testIsOwner},
				{"Election", testElection},
				{"ElectionErrors", testElectionErrors},
				{"CampaignCanceled", testCampaignCanceled},
				{"ResumeElection", testResumeElection},
			} {
				t.Run(tt.name, func(t *testing.T) { tt.fn(t, e) })
			}
		})
	}
}

// env makes clients of the server under test: ours, and etcd's clientv3
// to check that the two packages' recipes interoperate.
type env struct{ endpoint string }

func (e *env) client(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: []string{e.endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (e *env) etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// session is a session of a new client of ours, closed when the test ends.
func (e *env) session(t *testing.T, opts ...concurrency.SessionOption) *concurrency.Session {
	t.Helper()
	return newSession(t, e.client(t), opts...)
}

func newSession(t *testing.T, c *client.Client, opts ...concurrency.SessionOption) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// etcdSession is a session of a new clientv3 client.
func (e *env) etcdSession(t *testing.T, opts ...etcdconc.SessionOption) *etcdconc.Session {
	t.Helper()
	s, err := etcdconc.NewSession(e.etcdClient(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// keysUnder lists the keys under pfx, in create order.
func keysUnder(t *testing.T, c *client.Client, pfx string) []string {
	t.Helper()
	r, err := c.Get(testCtx(t), pfx, client.WithPrefix(), client.WithSort(client.SortByCreateRevision, client.SortAscend))
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for _, kv := range r.Kvs {
		ks = append(ks, string(kv.Key))
	}
	return ks
}

// waitKeys waits until pfx holds n keys.
func waitKeys(t *testing.T, c *client.Client, pfx string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ks := keysUnder(t, c, pfx)
		if len(ks) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys under %s, want %d: %v", len(ks), pfx, n, ks)
		}
	}
}

// waitDone waits for ch to close.
func waitDone(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not done after 5s", what)
	}
}
