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

// waitCompacted polls until a read of key at rev is refused as compacted.
func waitCompacted(ctx context.Context, t *testing.T, c *client.Client, key string, rev int64) {
	t.Helper()
	for {
		_, err := c.Get(ctx, key, client.WithRev(rev), client.WithSerializable())
		if errors.Is(err, rpctypes.ErrCompacted) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("revision %d of %s never compacted (last answer: %v)", rev, key, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func putN(ctx context.Context, t *testing.T, c *client.Client, key string, n int) int64 {
	t.Helper()
	var rev int64
	for i := range n {
		resp, err := c.Put(ctx, key, fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	return rev
}

// TestAutoCompactionRevision: revision mode keeps the last N revisions on
// every member, and only the leader proposes the compactions.
func TestAutoCompactionRevision(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3, "--auto-compaction-mode", "revision", "--auto-compaction-retention", "10",
		"--auto-compaction-check-interval", "200ms", "--log-level", "info")
	c := newClient(t, ms[0].Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	last := putN(ctx, t, c, "a", 30)
	keep := last - 10 // the oldest revision the retention keeps
	for _, m := range ms {
		mc := newClient(t, m.Endpoint)
		waitCompacted(ctx, t, mc, "a", keep-1)
		if _, err := mc.Get(ctx, "a", client.WithRev(keep), client.WithSerializable()); err != nil {
			t.Fatalf("%s: revision %d, within the retention, unreadable: %v", m.Name, keep, err)
		}
	}
	compactors := 0
	for _, m := range ms {
		if strings.Contains(m.Log(), "starting auto revision compaction") {
			compactors++
		}
	}
	if compactors != 1 {
		t.Fatalf("%d members compacted, want the leader alone", compactors)
	}
}

// TestAutoCompactionPeriodic: with a retention of two seconds, history
// older than that is compacted away, on kvd as on etcd, while the latest
// revision stays readable.
func TestAutoCompactionPeriodic(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			m := srv.start(t, "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s")
			c := newClient(t, m.Endpoint)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			first := putN(ctx, t, c, "p", 5)
			last := putN(ctx, t, c, "p", 5)
			waitCompacted(ctx, t, c, "p", first)
			if _, err := c.Get(ctx, "p", client.WithRev(last)); err != nil {
				t.Fatalf("latest revision %d unreadable: %v", last, err)
			}
		})
	}
}

// TestAutoCompactionWithAuth: with auth enabled, where kvd lets only root
// compact, the member's own compactions still go through.
func TestAutoCompactionWithAuth(t *testing.T) {
	m := framework.StartKvd(t, "--auto-compaction-mode", "revision", "--auto-compaction-retention", "5",
		"--auto-compaction-check-interval", "200ms")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := newClient(t, m.Endpoint)
	enableRootAuth(ctx, t, c, "rootpw")
	root, err := client.New(client.Config{Endpoints: []string{m.Endpoint}, Username: "root", Password: "rootpw"})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	last := putN(ctx, t, root, "a", 20)
	waitCompacted(ctx, t, root, "a", last-6)
	if _, err := root.Get(ctx, "a", client.WithRev(last-5)); err != nil {
		t.Fatalf("revision %d, within the retention, unreadable: %v", last-5, err)
	}
}
