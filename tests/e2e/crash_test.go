package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

type ackedPut struct {
	key, value string
	rev        int64
}

// TestCrashLosesNoAcknowledgedWrite kills kvd with SIGKILL while clients
// are writing, restarts it from the same data dir, and checks that every
// put the server acknowledged is there with the revision it was given.
// Small snapshot counts make the crash land around WAL truncation too.
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"default", nil},
		{"frequent-snapshots", []string{"--snapshot-count", "50"}},
		{"snapshot-every-few-entries", []string{"--snapshot-count", "3"}},
		{"slow-batches", []string{"--backend-batch-interval", "2s", "--backend-batch-limit", "100000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := framework.StartKvd(t, tc.extra...)
			acked := putUntilKilled(t, m, 8, 700*time.Millisecond)
			if len(acked) < 50 {
				t.Fatalf("only %d puts acknowledged before the kill; the test proves little", len(acked))
			}
			m.Start()
			c := newClientv3(t, m.Endpoint)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for _, p := range acked {
				resp, err := c.Get(ctx, p.key)
				if err != nil {
					t.Fatalf("get %s after restart: %v", p.key, err)
				}
				if len(resp.Kvs) != 1 {
					t.Fatalf("acknowledged put of %s (rev %d) lost after kill -9", p.key, p.rev)
				}
				kv := resp.Kvs[0]
				if string(kv.Value) != p.value || kv.ModRevision != p.rev {
					t.Fatalf("%s = %q at rev %d, acknowledged %q at rev %d", p.key, kv.Value, kv.ModRevision, p.value, p.rev)
				}
			}
			// The member knows itself again, even when it died before its
			// membership record reached the database.
			if ml, err := c.MemberList(ctx); err != nil || len(ml.Members) != 1 || ml.Members[0].Name != m.Name {
				t.Fatalf("member list after restart: %v %v", ml, err)
			}
			// The restarted member keeps taking writes at later revisions.
			resp, err := c.Put(ctx, "after-restart", "x")
			if err != nil {
				t.Fatal(err)
			}
			if last := maxRev(acked); resp.Header.Revision <= last {
				t.Fatalf("put after restart got rev %d, not above acknowledged rev %d", resp.Header.Revision, last)
			}
			if tc.name == "frequent-snapshots" {
				snaps, _ := filepath.Glob(filepath.Join(m.DataDir, "member", "snap", "*.snap"))
				if len(snaps) == 0 {
					t.Fatalf("no raft snapshot after %d puts with --snapshot-count 50", len(acked))
				}
			}
			t.Logf("%d acknowledged puts survived kill -9", len(acked))
		})
	}
}

// putUntilKilled runs writers against m and kills m after d, returning
// every put that was acknowledged before the kill.
func putUntilKilled(t *testing.T, m *framework.Member, writers int, d time.Duration) []ackedPut {
	c := newClientv3(t, m.Endpoint)
	var (
		mu    sync.Mutex
		acked []ackedPut
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key, val := fmt.Sprintf("crash/%d/%06d", w, i), fmt.Sprintf("v%d-%d", w, i)
				pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
				resp, err := c.Put(pctx, key, val)
				pcancel()
				if err != nil {
					return
				}
				mu.Lock()
				acked = append(acked, ackedPut{key, val, resp.Header.Revision})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(d)
	m.Kill()
	cancel()
	wg.Wait()
	return acked
}

func maxRev(ps []ackedPut) int64 {
	var r int64
	for _, p := range ps {
		r = max(r, p.rev)
	}
	return r
}

func newClientv3(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
