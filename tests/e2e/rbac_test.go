package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// The randomized RBAC test gives random users random roles with random
// permissions on random keys and ranges, then makes random requests as
// them, and requires each outcome (allowed, or "permission denied" with
// nothing changed) to be what a reference model predicts. The model is
// written independently of the server's: it checks coverage point by
// point instead of merging intervals.

// rbacSeed is KVD_RBAC_SEED when set, else the clock.
func rbacSeed(t *testing.T) int64 {
	if s := os.Getenv("KVD_RBAC_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("KVD_RBAC_SEED=%q: %v", s, err)
		}
		return n
	}
	return time.Now().UnixNano()
}

// keyRange is [from, to); to "" means every key from from on, and a
// point is [k, k+"\x00").
type keyRange struct{ from, to string }

func point(k string) keyRange { return keyRange{k, k + "\x00"} }

// perm is a permission as the model holds it.
type perm struct {
	r           keyRange
	read, write bool
}

// modelUser is what a user may do, the union of its roles' permissions.
type modelUser []perm

// allows says whether every key of r is in some permission of the right
// kind. Coverage can only stop at a permission's end, so it is enough to
// look at r's start and at each such end inside r.
func (u modelUser) allows(r keyRange, write bool) bool {
	probes := []string{r.from}
	for _, p := range u {
		if p.r.to != "" && p.r.to > r.from && (r.to == "" || p.r.to < r.to) {
			probes = append(probes, p.r.to)
		}
	}
	for _, k := range probes {
		if !u.holds(k, write) {
			return false
		}
	}
	return true
}

func (u modelUser) holds(k string, write bool) bool {
	for _, p := range u {
		if (write && !p.write) || (!write && !p.read) {
			continue
		}
		if p.r.from <= k && (p.r.to == "" || k < p.r.to) {
			return true
		}
	}
	return false
}

var rbacKeys = []string{"a", "ab", "b", "ba", "bb", "c", "cc", "d", "e"}

func randKey(rng *rand.Rand) string { return rbacKeys[rng.Intn(len(rbacKeys))] }

// randRange is a single key, a prefix, an explicit range or from-key,
// and the request's key and end for it.
func randRange(rng *rand.Rand) (keyRange, string, string) {
	k := randKey(rng)
	switch rng.Intn(4) {
	case 0:
		return point(k), k, ""
	case 1:
		end := clientv3.GetPrefixRangeEnd(k)
		return keyRange{k, end}, k, end
	case 2:
		e := randKey(rng)
		for e <= k {
			k, e = e, k+"z"
		}
		return keyRange{k, e}, k, e
	}
	return keyRange{k, ""}, k, "\x00"
}

// TestRBACRandomized runs against kvd, and against etcd, whose answers
// show the model is etcd's.
func TestRBACRandomized(t *testing.T) {
	seed := rbacSeed(t)
	t.Logf("seed %d (rerun with KVD_RBAC_SEED=%d)", seed, seed)
	for _, srv := range []struct {
		name  string
		start func(testing.TB, ...string) *framework.Member
	}{{"kvd", framework.StartKvd}, {"etcd", framework.StartEtcd}} {
		t.Run(srv.name, func(t *testing.T) {
			if srv.name == "etcd" {
				framework.RequireBin(t, framework.EtcdBin())
			}
			runRandomRBAC(t, seed, srv.start(t))
		})
	}
}

func runRandomRBAC(t *testing.T, seed int64, m *framework.Member) {
	rng := rand.New(rand.NewSource(seed))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	users := setUpRandomRBAC(ctx, t, rng, admin)
	root, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint}, Username: "root", Password: "rootpw"})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	clients := make([]*clientv3.Client, len(users))
	for i := range users {
		if clients[i], err = clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint}, Username: fmt.Sprintf("u%d", i), Password: "pw"}); err != nil {
			t.Fatal(err)
		}
		defer clients[i].Close()
	}
	leased := newLeasedKeys(ctx, t, rng, root)
	const cases = 300
	for n := range cases {
		i := rng.Intn(len(users))
		c := rbacCase(ctx, rng, clients[i], users[i], leased)
		before, err := root.Get(ctx, "", clientv3.WithFromKey())
		if err != nil {
			t.Fatal(err)
		}
		got := c.run()
		switch {
		case c.allowed && got != nil:
			t.Fatalf("seed %d case %d: u%d %s: %v, the model allows it", seed, n, i, c.what, got)
		case !c.allowed && !errors.Is(got, rpctypes.ErrPermissionDenied):
			t.Fatalf("seed %d case %d: u%d %s: %v, the model denies it", seed, n, i, c.what, got)
		case !c.allowed:
			after, err := root.Get(ctx, "", clientv3.WithFromKey())
			if err != nil || after.Header.Revision != before.Header.Revision || !sameValues(before, after) {
				t.Fatalf("seed %d case %d: u%d %s was denied but changed the store", seed, n, i, c.what)
			}
		}
		if c.after != nil {
			c.after()
		}
	}
}

func sameValues(a, b *clientv3.GetResponse) bool {
	if len(a.Kvs) != len(b.Kvs) {
		return false
	}
	for i := range a.Kvs {
		if string(a.Kvs[i].Key) != string(b.Kvs[i].Key) || a.Kvs[i].ModRevision != b.Kvs[i].ModRevision {
			return false
		}
	}
	return true
}
