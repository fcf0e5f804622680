package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// setUpRandomRBAC writes every key, makes four roles of one to three
// random permissions and three users of random roles (u0, u1, u2, with
// password "pw"), then root, and enables auth. It returns the model of
// each user.
func setUpRandomRBAC(ctx context.Context, t *testing.T, rng *rand.Rand, c *clientv3.Client) []modelUser {
	t.Helper()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range rbacKeys {
		must(c.Put(ctx, k, "v"))
	}
	roles := make([]map[keyRange]perm, 4)
	for i := range roles {
		name := fmt.Sprintf("r%d", i)
		must(c.RoleAdd(ctx, name))
		roles[i] = map[keyRange]perm{}
		for range 1 + rng.Intn(3) {
			r, key, end := randRange(rng)
			typ := clientv3.PermissionType(rng.Intn(3))
			must(c.RoleGrantPermission(ctx, name, key, end, typ))
			// Granting on the same range again changes the type.
			roles[i][r] = perm{r: r, read: typ != clientv3.PermissionType(clientv3.PermWrite), write: typ != clientv3.PermissionType(clientv3.PermRead)}
		}
	}
	users := make([]modelUser, 3)
	for i := range users {
		name := fmt.Sprintf("u%d", i)
		must(c.UserAdd(ctx, name, "pw"))
		for j, role := range roles {
			if rng.Intn(2) == 0 {
				continue
			}
			must(c.UserGrantRole(ctx, name, fmt.Sprintf("r%d", j)))
			for _, p := range role {
				users[i] = append(users[i], p)
			}
		}
		t.Logf("u%d may: %v", i, users[i])
	}
	must(c.RoleAdd(ctx, "root"))
	must(c.UserAdd(ctx, "root", "rootpw"))
	must(c.UserGrantRole(ctx, "root", "root"))
	must(c.AuthEnable(ctx))
	return users
}

// leasedKeys is a lease root holds, with a key or two attached.
type leasedKeys struct {
	ctx  context.Context
	t    *testing.T
	rng  *rand.Rand
	root *clientv3.Client
	id   clientv3.LeaseID
}

func newLeasedKeys(ctx context.Context, t *testing.T, rng *rand.Rand, root *clientv3.Client) *leasedKeys {
	l := &leasedKeys{ctx: ctx, t: t, rng: rng, root: root}
	l.renew()
	return l
}

// renew grants a new lease and attaches keys to it.
func (l *leasedKeys) renew() {
	l.t.Helper()
	g, err := l.root.Grant(l.ctx, 600)
	if err != nil {
		l.t.Fatal(err)
	}
	l.id = g.ID
	for range 1 + l.rng.Intn(2) {
		if _, err := l.root.Put(l.ctx, randKey(l.rng), "leased", clientv3.WithLease(g.ID)); err != nil {
			l.t.Fatal(err)
		}
	}
}

// keys are the keys attached now: other requests may have moved some.
func (l *leasedKeys) keys() []string {
	l.t.Helper()
	r, err := l.root.TimeToLive(l.ctx, l.id, clientv3.WithAttachedKeys())
	if err != nil {
		l.t.Fatal(err)
	}
	ks := make([]string, len(r.Keys))
	for i, k := range r.Keys {
		ks[i] = string(k)
	}
	return ks
}

// rbacCaseT is one random request: what it is, whether the model allows
// it, how to make it, and what to do after it.
type rbacCaseT struct {
	what    string
	allowed bool
	run     func() error
	after   func()
}

func rbacCase(ctx context.Context, rng *rand.Rand, c *clientv3.Client, u modelUser, leased *leasedKeys) rbacCaseT {
	r, key, end := randRange(rng)
	opts := rangeOpts(end)
	switch rng.Intn(6) {
	case 0:
		return rbacCaseT{what: fmt.Sprintf("get %q..%q", key, end), allowed: u.allows(r, false),
			run: func() error { _, err := c.Get(ctx, key, opts...); return err }}
	case 1:
		k, prev := randKey(rng), rng.Intn(3) == 0
		po := []clientv3.OpOption{}
		if prev {
			po = append(po, clientv3.WithPrevKV())
		}
		return rbacCaseT{what: fmt.Sprintf("put %q (prev %v)", k, prev), allowed: u.allows(point(k), true) && (!prev || u.allows(point(k), false)),
			run: func() error { _, err := c.Put(ctx, k, "x", po...); return err }}
	case 2:
		return rbacCaseT{what: fmt.Sprintf("delete %q..%q", key, end), allowed: u.allows(r, true),
			run: func() error { _, err := c.Delete(ctx, key, opts...); return err }}
	case 3:
		a, b := randKey(rng), randKey(rng)
		return rbacCaseT{what: fmt.Sprintf("txn version(%q)>0 ? put %q : get %q..%q", a, b, key, end),
			allowed: u.allows(point(a), false) && u.allows(point(b), true) && u.allows(r, false),
			run: func() error {
				_, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Version(a), ">", 0)).
					Then(clientv3.OpPut(b, "t")).Else(clientv3.OpGet(key, opts...)).Commit()
				return err
			}}
	case 4:
		return rbacCaseT{what: fmt.Sprintf("watch %q..%q", key, end), allowed: u.allows(r, false),
			run: func() error { return watchOutcome(ctx, c, key, opts) }}
	}
	keys := leased.keys()
	allowed := true
	for _, k := range keys {
		allowed = allowed && u.allows(point(k), true)
	}
	rc := rbacCaseT{what: fmt.Sprintf("revoke a lease of %q", keys), allowed: allowed,
		run: func() error { _, err := c.Revoke(ctx, leased.id); return err }}
	if allowed {
		rc.after = leased.renew
	}
	return rc
}

func rangeOpts(end string) []clientv3.OpOption {
	switch end {
	case "":
		return nil
	case "\x00":
		return []clientv3.OpOption{clientv3.WithFromKey()}
	}
	return []clientv3.OpOption{clientv3.WithRange(end)}
}

// watchOutcome opens a watch and says how its creation went.
func watchOutcome(ctx context.Context, c *clientv3.Client, key string, opts []clientv3.OpOption) error {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	wr, ok := <-c.Watch(wctx, key, append(opts, clientv3.WithCreatedNotify())...)
	switch {
	case !ok:
		return wctx.Err()
	case wr.Canceled && wr.Err() != nil && strings.Contains(wr.Err().Error(), "permission denied"):
		return rpctypes.ErrPermissionDenied
	case wr.Canceled:
		return wr.Err()
	}
	return nil
}
