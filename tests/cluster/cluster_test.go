// Package cluster tests kvd clusters of several real processes.
package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

func client(t *testing.T, eps ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestThreeMembersReplicate: a write through any member is read back,
// linearizably, through every member; with the leader killed the other
// two keep taking writes, and the old leader catches up on restart.
func TestThreeMembersReplicate(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, m := range ms {
		if _, err := client(t, m.Endpoint).Put(ctx, fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatalf("put through %s: %v", m.Name, err)
		}
	}
	for _, m := range ms {
		resp, err := client(t, m.Endpoint).Get(ctx, "k", clientv3.WithPrefix())
		if err != nil || resp.Count != 3 || resp.Header.Revision != 4 {
			t.Fatalf("read through %s: %v %v", m.Name, resp, err)
		}
	}
	ml, err := client(t, ms[0].Endpoint).MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("member list: %v %v", ml, err)
	}

	st, err := client(t, ms[0].Endpoint).Status(ctx, ms[0].Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var leader *framework.Member
	var rest []*framework.Member
	for i, m := range ms {
		if memberID(ml, m.Name) == st.Leader {
			leader = ms[i]
		} else {
			rest = append(rest, m)
		}
	}
	if leader == nil {
		t.Fatalf("no member is leader %x", st.Leader)
	}
	leader.Kill()
	c := client(t, rest[0].Endpoint, rest[1].Endpoint)
	// A proposal forwarded to the dead leader is lost and times out, as
	// in etcd; a client retries, and a new leader takes it.
	for i := range 20 {
		putRetrying(ctx, t, c, fmt.Sprintf("after/%d", i))
	}
	final, err := c.Get(ctx, "after/", clientv3.WithPrefix())
	if err != nil || final.Count != 20 {
		t.Fatalf("survivors after writes: %v %v", final, err)
	}
	last := final.Header.Revision
	leader.Start()
	eventually(t, 20*time.Second, "restarted leader catches up", func() error {
		resp, err := client(t, leader.Endpoint).Get(ctx, "after/", clientv3.WithPrefix(), clientv3.WithSerializable())
		if err == nil && (resp.Count != 20 || resp.Header.Revision < last) {
			err = fmt.Errorf("%d keys at revision %d, want 20 at %d or later", resp.Count, resp.Header.Revision, last)
		}
		return err
	})
}

func memberID(ml *clientv3.MemberListResponse, name string) uint64 {
	for _, m := range ml.Members {
		if m.Name == name {
			return m.ID
		}
	}
	return 0
}

// putRetrying writes key until it succeeds: a write that was in flight to
// a member that died is lost, and the client learns it only by a timeout.
func putRetrying(ctx context.Context, t *testing.T, c *clientv3.Client, key string) {
	t.Helper()
	eventually(t, 20*time.Second, "put "+key, func() error {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := c.Put(pctx, key, "v")
		return err
	})
}
