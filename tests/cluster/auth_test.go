package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// userClient is a clientv3 client of one member that logs in as user.
func userClient(t *testing.T, ep, user, password string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Username: user, Password: password})
	if err != nil {
		t.Fatalf("log in as %s at %s: %v", user, ep, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// setUpAuth makes root and alice, who may read /ro/ and read and write
// /rw/, and enables auth.
func setUpAuth(ctx context.Context, t *testing.T, c *clientv3.Client) {
	t.Helper()
	steps := []func() error{
		func() error { _, err := c.RoleAdd(ctx, "root"); return err },
		func() error { _, err := c.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.RoleAdd(ctx, "app"); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, "app", "/ro/", clientv3.GetPrefixRangeEnd("/ro/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error {
			_, err := c.RoleGrantPermission(ctx, "app", "/rw/", clientv3.GetPrefixRangeEnd("/rw/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := c.UserAdd(ctx, "alice", "alicepw"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "alice", "app"); return err },
		func() error { _, err := c.Put(ctx, "/ro/k", "v"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	}
	for i, st := range steps {
		if err := st(); err != nil {
			t.Fatalf("auth set-up step %d: %v", i, err)
		}
	}
}

// TestAuthOnCluster: on 3 members, a user reads and writes only what its
// roles allow, through any member; a refused write or txn changes
// nothing; a watch on a forbidden range is refused; taking a permission
// away stops the user's very next request on another member; a deleted
// user's token stops working everywhere; and users, roles and the
// enabled state survive a whole-cluster crash.
func TestAuthOnCluster(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	setUpAuth(ctx, t, client(t, ms[0].Endpoint))
	root := userClient(t, ms[0].Endpoint, "root", "rootpw")
	alice := make([]*clientv3.Client, len(ms))
	for i, m := range ms {
		alice[i] = userClient(t, m.Endpoint, "alice", "alicepw")
	}
	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Fatalf("%s: %v, want permission denied", what, err)
		}
	}
	if _, err := alice[1].Put(ctx, "/rw/k", "1"); err != nil {
		t.Fatal(err)
	}
	if r, err := alice[2].Get(ctx, "/ro/k"); err != nil || r.Count != 1 {
		t.Fatalf("read /ro/k: %v %v", r, err)
	}
	before, err := root.Get(ctx, "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice[0].Put(ctx, "/ro/k", "x")
	denied("write to /ro/", err)
	_, err = alice[1].Txn(ctx).Then(clientv3.OpPut("/rw/k", "2"), clientv3.OpPut("/ro/k", "2")).Commit()
	denied("txn writing /rw/ and /ro/", err)
	_, err = alice[2].Get(ctx, "/", clientv3.WithPrefix())
	denied("read of everything", err)
	_, err = alice[0].Compact(ctx, before.Header.Revision)
	denied("compaction by a user without the root role", err)
	after, err := root.Get(ctx, "/", clientv3.WithPrefix())
	if err != nil || after.Header.Revision != before.Header.Revision || !sameKVs(before, after) {
		t.Fatalf("refused requests changed the store: revision %d to %d", before.Header.Revision, after.Header.Revision)
	}
	wr := <-alice[0].Watch(ctx, "/", clientv3.WithPrefix())
	if !wr.Canceled || wr.Err() == nil || !strings.Contains(wr.Err().Error(), "permission denied") {
		t.Fatalf("watch of a forbidden range: %+v (%v)", wr, wr.Err())
	}

	open := alice[2].Watch(ctx, "/rw/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if wr := <-open; !wr.Created {
		t.Fatalf("watch of /rw/: %+v", wr)
	}
	if _, err := root.RoleRevokePermission(ctx, "app", "/rw/", clientv3.GetPrefixRangeEnd("/rw/")); err != nil {
		t.Fatal(err)
	}
	// clientv3 ends a watch the server cancels (other than for
	// compaction) by closing its channel.
	select {
	case wr, ok := <-open:
		if ok && (!wr.Canceled || wr.Err() == nil || !strings.Contains(wr.Err().Error(), "permission denied")) {
			t.Fatalf("open watch of /rw/ after the permission was revoked: %+v (%v)", wr, wr.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an open watch of /rw/ went on after the permission was revoked")
	}
	_, err = alice[2].Put(ctx, "/rw/k", "3")
	denied("write right after the permission was revoked, on another member", err)
	_, err = alice[1].Get(ctx, "/rw/k")
	denied("read right after the permission was revoked", err)

	framework.CrashCluster(ms, 0)
	eventually(t, 20*time.Second, "alice reads /ro/ after the restart", func() error {
		_, err := userClient(t, ms[1].Endpoint, "alice", "alicepw").Get(ctx, "/ro/k")
		return err
	})
	if st, err := userClient(t, ms[2].Endpoint, "root", "rootpw").AuthStatus(ctx); err != nil || !st.Enabled {
		t.Fatalf("auth status after the restart: %v %v", st, err)
	}
	if _, err := client(t, ms[0].Endpoint).Get(ctx, "/ro/k"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("a read without a user after the restart: %v", err)
	}

	alices := make([]*clientv3.Client, len(ms))
	for i, m := range ms {
		alices[i] = userClient(t, m.Endpoint, "alice", "alicepw")
	}
	if _, err := userClient(t, ms[0].Endpoint, "root", "rootpw").UserDelete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	for i, c := range alices {
		if _, err := c.Get(ctx, "/ro/k"); err == nil {
			t.Fatalf("a deleted user's token still works on %s", ms[i].Name)
		}
	}
}

func sameKVs(a, b *clientv3.GetResponse) bool {
	if len(a.Kvs) != len(b.Kvs) {
		return false
	}
	for i := range a.Kvs {
		if string(a.Kvs[i].Key) != string(b.Kvs[i].Key) || string(a.Kvs[i].Value) != string(b.Kvs[i].Value) {
			return false
		}
	}
	return true
}

// TestAuthSurvivesSnapshot: a follower that catches up from the leader's
// database holds the same users, roles and enabled state, and enforces
// them.
func TestAuthSurvivesSnapshot(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3, "--snapshot-count", "100", "--snapshot-catchup-entries", "10", "--log-level", "info")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lagging, rest := stopFollower(ctx, t, ms)
	setUpAuth(ctx, t, client(t, rest[0].Endpoint, rest[1].Endpoint))
	root := userClient(t, rest[0].Endpoint, "root", "rootpw")
	for i := range 200 {
		if _, err := root.Put(ctx, fmt.Sprintf("k/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	lagging.Start()
	eventually(t, 30*time.Second, "lagging member caught up", func() error {
		r, err := userClient(t, lagging.Endpoint, "root", "rootpw").Get(ctx, "k/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
		if err == nil && r.Count != 200 {
			err = fmt.Errorf("%d keys", r.Count)
		}
		return err
	})
	if !strings.Contains(lagging.Log(), "installed snapshot from leader") {
		t.Fatalf("the lagging member caught up without a snapshot")
	}
	alice := userClient(t, lagging.Endpoint, "alice", "alicepw")
	if _, err := alice.Get(ctx, "/ro/k", clientv3.WithSerializable()); err != nil {
		t.Fatalf("alice reads /ro/ on the caught-up member: %v", err)
	}
	if _, err := alice.Get(ctx, "k/000", clientv3.WithSerializable()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("alice reads k/ on the caught-up member: %v, want permission denied", err)
	}
}
