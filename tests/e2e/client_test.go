package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/tests/framework"
)

func newClient(t *testing.T, eps ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClientLibrary runs pkg/client against kvd and the real etcd with
// the same expectations.
func TestClientLibrary(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			m := srv.start(t)
			c := newClient(t, m.Endpoint)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i := range 3 {
				if _, err := c.Put(ctx, fmt.Sprintf("/p/%d", i), "v"); err != nil {
					t.Fatal(err)
				}
			}
			get, err := c.Get(ctx, "/p/", client.WithPrefix(), client.WithSort(client.SortByKey, client.SortDescend), client.WithLimit(2))
			if err != nil {
				t.Fatal(err)
			}
			if len(get.Kvs) != 2 || string(get.Kvs[0].Key) != "/p/2" || !get.More || get.Count != 3 {
				t.Fatalf("get: %v", get)
			}
			stream, err := c.GetStream(ctx, "/p/", client.WithPrefix())
			if err != nil || len(stream.Kvs) != 3 || stream.Header.Revision != 4 {
				t.Fatalf("get stream: %v %v", stream, err)
			}
			txn, err := c.Txn(ctx).If(client.Compare(client.Version("/p/0"), "=", 1), client.Compare(client.Value("/p/").WithPrefix(), "=", "v")).
				Then(client.OpDelete("/p/", client.WithPrefix(), client.WithPrevKV())).Commit()
			if err != nil || !txn.Succeeded || txn.Responses[0].GetResponseDeleteRange().Deleted != 3 {
				t.Fatalf("txn: %v %v", txn, err)
			}
			if _, err := c.Get(ctx, "/p/0", client.WithRev(100)); !errors.Is(err, rpctypes.ErrFutureRev) {
				t.Fatalf("future revision: %v", err)
			}
			if _, err := c.Compact(ctx, 3, client.WithCompactPhysical()); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get(ctx, "/p/0", client.WithRev(2)); !errors.Is(err, rpctypes.ErrCompacted) {
				t.Fatalf("compacted revision: %v", err)
			}
			ml, err := c.MemberList(ctx)
			if err != nil || len(ml.Members) != 1 {
				t.Fatalf("member list: %v %v", ml, err)
			}
			st, err := c.Status(ctx, m.Endpoint)
			if err != nil || st.Leader != ml.Members[0].ID || !strings.HasPrefix(st.Version, "3.7.") {
				t.Fatalf("status: %v %v", st, err)
			}
		})
	}
}

// TestClientFailsOver gives the client a dead endpoint beside a live one:
// reads keep succeeding because the balancer routes around the dead one
// and safe calls are retried.
func TestClientFailsOver(t *testing.T) {
	m := framework.StartKvd(t)
	dead := framework.DeadEndpoint(t)
	c := newClient(t, dead, m.Endpoint, dead)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := c.Get(ctx, "k"); err != nil {
			t.Fatalf("read %d with a dead endpoint configured: %v", i, err)
		}
	}
}

// enableRootAuth adds root with password pw, gives it the root role and
// turns auth on, through c.
func enableRootAuth(ctx context.Context, t *testing.T, c *client.Client, pw string) {
	t.Helper()
	for _, step := range []func() error{
		func() error { _, err := c.UserAdd(ctx, "root", pw); return err },
		func() error { _, err := c.RoleAdd(ctx, "root"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
}
