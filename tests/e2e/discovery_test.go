package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvd-io/kvd/pkg/server/discovery"
	"github.com/kvd-io/kvd/tests/framework"
)

func joinConfig(endpoint, token string, i int) discovery.V3Config {
	return discovery.V3Config{
		Endpoints: []string{endpoint},
		Token:     token,
		Joiner: discovery.Joiner{
			Name:         fmt.Sprintf("m%d", i),
			PeerURLs:     []string{fmt.Sprintf("http://127.0.0.1:%d", 23800+i)},
			MemberID:     uint64(0x1000 + i),
			PollInterval: 20 * time.Millisecond,
		},
	}
}

// TestDiscoveryV3Join: three members joining a token of size 3 at once
// all get the same initial cluster, made of the three of them; a fourth
// finds the cluster full.
func TestDiscoveryV3Join(t *testing.T) {
	m := framework.StartKvd(t)
	c := newClient(t, m.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const token = "e2e-join"
	if _, err := c.Put(ctx, discovery.SizeKey(token), "3"); err != nil {
		t.Fatal(err)
	}

	got := make([]string, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { got[i], errs[i] = discovery.JoinV3(ctx, joinConfig(m.Endpoint, token, i+1)) })
	}
	wg.Wait()
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("member %d: %v", i+1, errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("members disagree:\n%s\n%s", got[0], got[i])
		}
	}
	for i := range 3 {
		want := fmt.Sprintf("m%d=http://127.0.0.1:%d", i+1, 23801+i)
		if !containsEntry(got[0], want) {
			t.Fatalf("initial cluster %q lacks %q", got[0], want)
		}
	}
	resp, err := c.Get(ctx, discovery.MemberKey(token, 0x1001))
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "m1=http://127.0.0.1:23801" {
		t.Fatalf("registration of m1: %v %v", resp, err)
	}

	// Joining again with the same registration is harmless, as after a
	// crash before bootstrap.
	again, err := discovery.JoinV3(ctx, joinConfig(m.Endpoint, token, 2))
	if err != nil || again != got[0] {
		t.Fatalf("rejoin: %q %v", again, err)
	}

	_, err = discovery.JoinV3(ctx, joinConfig(m.Endpoint, token, 4))
	if !errors.Is(err, discovery.ErrFullCluster) {
		t.Fatalf("fourth member: err = %v, want %v", err, discovery.ErrFullCluster)
	}
	if resp, err := c.Get(ctx, discovery.MemberKey(token, 0x1004)); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the fourth member registered: %v %v", resp, err)
	}
}

func containsEntry(cluster, entry string) bool {
	for len(cluster) > 0 {
		var part string
		part, cluster, _ = strings.Cut(cluster, ",")
		if part == entry {
			return true
		}
	}
	return false
}

// TestDiscoveryV3Errors: a token nobody sized, or sized with garbage, is
// an error at once; a join that waits for missing members ends with its
// context.
func TestDiscoveryV3Errors(t *testing.T) {
	m := framework.StartKvd(t)
	c := newClient(t, m.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := discovery.JoinV3(ctx, joinConfig(m.Endpoint, "unsized", 1)); !errors.Is(err, discovery.ErrSizeNotFound) {
		t.Fatalf("no size key: err = %v", err)
	}
	if _, err := c.Put(ctx, discovery.SizeKey("bad"), "three"); err != nil {
		t.Fatal(err)
	}
	if _, err := discovery.JoinV3(ctx, joinConfig(m.Endpoint, "bad", 1)); !errors.Is(err, discovery.ErrBadSizeKey) {
		t.Fatalf("bad size key: err = %v", err)
	}
	if _, err := c.Put(ctx, discovery.SizeKey("lonely"), "2"); err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithTimeout(ctx, 500*time.Millisecond)
	defer stop()
	if _, err := discovery.JoinV3(short, joinConfig(m.Endpoint, "lonely", 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a missing member: err = %v", err)
	}
}
