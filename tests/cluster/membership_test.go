package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// eventually retries fn until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func findMember(ml *clientv3.MemberListResponse, id uint64) (name string, learner, ok bool) {
	for _, m := range ml.Members {
		if m.ID == id {
			return m.Name, m.IsLearner, true
		}
	}
	return "", false, false
}

// TestMembershipChanges walks a member through its life: added as a
// learner, started with --initial-cluster-state=existing, promoted once
// caught up, its peer URLs updated, then removed, after which it stops.
func TestMembershipChanges(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := client(t, strings.Split(framework.Endpoints(ms), ",")...)

	eventually(t, 10*time.Second, "every member publishes its name and client URLs", func() error {
		ml, err := c.MemberList(ctx)
		if err != nil {
			return err
		}
		for _, m := range ml.Members {
			if m.Name == "" || len(m.ClientURLs) != 1 {
				return fmt.Errorf("member %x listed as %q %v", m.ID, m.Name, m.ClientURLs)
			}
		}
		return nil
	})

	// The strict reconfiguration check counts started members; a follower,
	// which exchanges no raft messages with the other followers, must
	// still see them up, or it refuses a voter that etcd would add.
	st, err := c.Status(ctx, ms[0].Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	follower := ms[0]
	if st.Leader == st.Header.MemberId {
		follower = ms[1]
	}
	eventually(t, 5*time.Second, "add a voter through a follower", func() error {
		resp, err := client(t, follower.Endpoint).MemberAdd(ctx, []string{"http://127.0.0.1:9"})
		if err == nil {
			_, err = c.MemberRemove(ctx, resp.Member.ID)
		}
		return err
	})

	port := framework.PickPort(t)
	peer := "http://127.0.0.1:" + strconv.Itoa(port)
	added, err := c.MemberAddAsLearner(ctx, []string{peer})
	if err != nil {
		t.Fatal(err)
	}
	id := added.Member.ID
	if !added.Member.IsLearner || len(added.Members) != 4 {
		t.Fatalf("member add: %v", added)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"same peer URL again", func() error { _, err := c.MemberAdd(ctx, []string{peer}); return err }, rpctypes.ErrPeerURLExist},
		{"second learner", func() error {
			_, err := c.MemberAddAsLearner(ctx, []string{"http://127.0.0.1:1"})
			return err
		}, rpctypes.ErrTooManyLearners},
		{"promote before it started", func() error { _, err := c.MemberPromote(ctx, id); return err }, rpctypes.ErrMemberLearnerNotReady},
		{"promote a voter", func() error { _, err := c.MemberPromote(ctx, added.Header.MemberId); return err }, rpctypes.ErrMemberNotLearner},
		{"bad URL", func() error { _, err := c.MemberAdd(ctx, []string{"unix://127.0.0.1:5"}); return err }, rpctypes.ErrMemberBadURLs},
		{"remove unknown", func() error { _, err := c.MemberRemove(ctx, 42); return err }, rpctypes.ErrMemberNotFound},
		{"update unknown", func() error { _, err := c.MemberUpdate(ctx, 42, []string{"http://127.0.0.1:2"}); return err }, rpctypes.ErrMemberNotFound},
	} {
		if err := tc.call(); !errors.Is(rpctypes.Error(err), tc.want) && (err == nil || err.Error() != tc.want.Error()) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}

	m4 := framework.NewJoiningMember(t, ms, "m4", peer)
	m4.Launch()
	m4.WaitHealthy(30 * time.Second)
	c4 := client(t, m4.Endpoint)
	eventually(t, 10*time.Second, "the learner publishes itself", func() error {
		ml, err := c.MemberList(ctx)
		if err != nil {
			return err
		}
		if name, learner, _ := findMember(ml, id); name != "m4" || !learner {
			return fmt.Errorf("m4 listed as %q learner=%v", name, learner)
		}
		return nil
	})
	if _, err := c4.Get(ctx, "k"); err == nil || !strings.Contains(err.Error(), "rpc not supported for learner") {
		t.Fatalf("linearizable read on a learner: %v", err)
	}
	if _, err := c4.Get(ctx, "k", clientv3.WithSerializable()); err != nil {
		t.Fatalf("serializable read on a learner: %v", err)
	}
	eventually(t, 20*time.Second, "promote the caught-up learner", func() error {
		_, err := c.MemberPromote(ctx, id)
		return err
	})
	// The promoted member learns of its promotion when it applies it, a
	// moment after the leader did.
	eventually(t, 5*time.Second, "put through the promoted member", func() error {
		_, err := c4.Put(ctx, "from-m4", "v")
		return err
	})
	for _, m := range ms {
		if resp, err := client(t, m.Endpoint).Get(ctx, "from-m4"); err != nil || resp.Count != 1 {
			t.Fatalf("read through %s: %v %v", m.Name, resp, err)
		}
	}

	newPeer := "http://localhost:" + strconv.Itoa(port)
	if _, err := c.MemberUpdate(ctx, id, []string{newPeer}); err != nil {
		t.Fatal(err)
	}
	ml, err := c.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ml.Members {
		if m.ID == id && !slices.Equal(m.PeerURLs, []string{newPeer}) {
			t.Fatalf("peer URLs after update: %v", m.PeerURLs)
		}
	}
	if _, err := c.Put(ctx, "after-update", "v"); err != nil {
		t.Fatal(err)
	}

	if _, err := c.MemberRemove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, exited := m4.WaitExit(15 * time.Second); !exited {
		t.Fatalf("removed member still running; log:\n%s", m4.Log())
	}
	ml, err = c.MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("member list after remove: %v %v", ml, err)
	}
	if _, err := c.Put(ctx, "after-remove", "v"); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentMemberAddsClash: the same peer URL added through every
// member at once is added once; the others are refused when their change
// applies, and a restart replays those refusals the same way, so raft
// never counts a voter that the member list does not have.
func TestConcurrentMemberAddsClash(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	time.Sleep(1500 * time.Millisecond) // let every member see its peers up
	peer := "http://127.0.0.1:" + strconv.Itoa(framework.PickPort(t))
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = client(t, m.Endpoint).MemberAdd(ctx, []string{peer})
		}()
	}
	wg.Wait()
	added := 0
	for _, err := range errs {
		switch {
		case err == nil:
			added++
		case !strings.Contains(err.Error(), "already exist"):
			t.Fatalf("a clashing add failed with %v", err)
		}
	}
	c := client(t, strings.Split(framework.Endpoints(ms), ",")...)
	ml, err := c.MemberList(ctx)
	if err != nil || added != 1 || len(ml.Members) != 4 {
		t.Fatalf("%d adds succeeded (%v), member list %v %v", added, errs, ml, err)
	}
	for _, m := range ml.Members {
		if m.PeerURLs[0] == peer {
			if _, err := c.MemberRemove(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, m := range ms {
		m.Stop()
		m.Start()
	}
	// Three voters, one of them down: two still make a quorum. A voter
	// replayed by mistake would make it two of four, and writes would stop.
	ms[2].Kill()
	putRetrying(ctx, t, client(t, ms[0].Endpoint, ms[1].Endpoint), "after-clash")
}
