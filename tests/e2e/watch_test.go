package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestWatchConformance drives the Watch API with etcd's own client on kvd
// and on etcd: live events, prev_kv, filters, replay from history, a
// compacted start, and progress requests must come out the same.
func TestWatchConformance(t *testing.T) {
	results := map[string]string{}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			m := srv.start(t)
			c := newClientv3(t, m.Endpoint)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			results[srv.name] = watchScenario(ctx, t, c)
		})
	}
	if results["kvd"] != results["etcd"] {
		t.Fatalf("kvd and etcd differ:\nkvd:\n%s\netcd:\n%s", results["kvd"], results["etcd"])
	}
}

// watchScenario returns a transcript of what the watchers saw.
func watchScenario(ctx context.Context, t *testing.T, c *clientv3.Client) string {
	t.Helper()
	var out strings.Builder
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	live := c.Watch(wctx, "/w/", clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	noPut := c.Watch(wctx, "/w/a", clientv3.WithFilterPut())
	if r := <-live; !r.Created {
		t.Fatalf("first response is not created: %+v", r)
	}
	steps := []func() error{
		func() error { _, err := c.Put(ctx, "/w/a", "1"); return err },
		func() error { _, err := c.Put(ctx, "/w/b", "1"); return err },
		func() error { _, err := c.Put(ctx, "/w/a", "2"); return err },
		func() error { _, err := c.Delete(ctx, "/w/", clientv3.WithPrefix()); return err },
		func() error { _, err := c.Put(ctx, "/other", "x"); return err },
		func() error { _, err := c.Put(ctx, "/w/c", "1"); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	record := func(name string, ch clientv3.WatchChan, n int) {
		t.Helper()
		got := 0
		for got < n {
			select {
			case r, ok := <-ch:
				if !ok {
					t.Fatalf("%s: channel closed after %d events", name, got)
				}
				fmt.Fprintf(&out, "%s rev=%d compact=%d canceled=%v\n", name, r.Header.Revision, r.CompactRevision, r.Canceled)
				for _, ev := range r.Events {
					fmt.Fprintf(&out, "  %s %s=%s mod=%d create=%d ver=%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision, ev.Kv.CreateRevision, ev.Kv.Version)
					if ev.PrevKv != nil {
						fmt.Fprintf(&out, " prev=%s", ev.PrevKv.Value)
					}
					out.WriteString("\n")
				}
				got += len(r.Events)
				if r.Canceled {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: %d of %d events", name, got, n)
			}
		}
	}
	record("live", live, 6)
	record("noput", noPut, 1)
	replay := c.Watch(wctx, "/w/b", clientv3.WithRev(1))
	record("replay", replay, 2)
	if _, err := c.Compact(ctx, 5); err != nil {
		t.Fatal(err)
	}
	record("compacted", c.Watch(wctx, "/w/", clientv3.WithPrefix(), clientv3.WithRev(2)), 1)
	if err := c.RequestProgress(wctx); err != nil {
		t.Fatal(err)
	}
	for r := range live {
		if r.IsProgressNotify() {
			fmt.Fprintf(&out, "progress rev=%d\n", r.Header.Revision)
			break
		}
	}
	return out.String()
}

// TestSlowWatcherDoesNotStallOthers: a client that opens a watch stream
// and never reads it does not delay another watcher's events beyond a
// bound, and the server's memory stays bounded while it is owed tens of
// megabytes of events.
func TestSlowWatcherDoesNotStallOthers(t *testing.T) {
	m := framework.StartKvd(t)
	c := newClientv3(t, m.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	conn, err := grpc.NewClient(m.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stuck, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // many watchers on the stuck stream, all owed every event
		if err := stuck.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("s/"), RangeEnd: []byte("s0"), WatchId: int64(i + 1)}}}); err != nil {
			t.Fatal(err)
		}
	}

	live := c.Watch(ctx, "s/", clientv3.WithPrefix())
	const writes = 2000
	value := strings.Repeat("v", 8<<10)
	delays := make(chan time.Duration, writes)
	sent := make([]time.Time, writes+2)
	go func() {
		for r := range live {
			for _, ev := range r.Events {
				delays <- time.Since(sent[ev.Kv.ModRevision-2])
			}
		}
	}()
	for i := range writes {
		sent[i] = time.Now()
		if _, err := c.Put(ctx, fmt.Sprintf("s/%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	var worst time.Duration
	for range writes {
		select {
		case d := <-delays:
			worst = max(worst, d)
		case <-time.After(10 * time.Second):
			t.Fatal("the live watcher stopped receiving events")
		}
	}
	if worst > 5*time.Second {
		t.Fatalf("an event took %v to reach the live watcher", worst)
	}
	// 20 watchers are owed 2000 events of 8 KiB: 320 MiB if queued in
	// memory. Bounded buffering keeps the server far below.
	rss, err := m.RSS()
	if err != nil {
		t.Fatal(err)
	}
	if rss > 200<<20 {
		t.Fatalf("server resident memory %d MiB with a stuck watch stream", rss>>20)
	}
	t.Logf("worst live delay %v, server RSS %d MiB", worst, rss>>20)
}

var idsRe = regexp.MustCompile(`"cluster_id":\d+,"member_id":\d+`)

// TestCLIWatchAgainstKvd: the real etcdctl's watch, and kvctl's, replay
// the same history from kvd as etcdctl does from etcd.
func TestCLIWatchAgainstKvd(t *testing.T) {
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	outputs := map[string]string{}
	for _, srv := range servers {
		m := srv.start(t)
		c := newClientv3(t, m.Endpoint)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, kv := range [][2]string{{"/w/a", "1"}, {"/w/b", "2"}, {"/w/a", "3"}} {
			if _, err := c.Put(ctx, kv[0], kv[1]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Delete(ctx, "/w/b"); err != nil {
			t.Fatal(err)
		}
		cancel()
		for _, ctl := range []struct{ name, bin string }{{"etcdctl", etcdctl}, {"kvctl", kvctl}} {
			if srv.name == "etcd" && ctl.name == "kvctl" {
				continue // kvctl against etcd is cmd/kvctl's TestWatchSameAsEtcdctl
			}
			var out strings.Builder
			for _, args := range [][]string{
				{"watch", "--prefix", "/w/", "--rev", "2", "--prev-kv"},
				{"watch", "/w/a", "--rev", "1", "-w", "json"},
			} {
				r := framework.Run(t, framework.Invocation{Bin: ctl.bin, Endpoints: m.Endpoint, Args: args, Timeout: 2 * time.Second, RunsOn: true})
				fmt.Fprintf(&out, "$ watch %s\n%s%s", strings.Join(args[1:], " "), r.Stdout, r.Stderr)
			}
			// The two servers run on different ports, so their IDs differ.
			outputs[ctl.name+" on "+srv.name] = idsRe.ReplaceAllString(framework.Normalize(out.String()), `"cluster_id":C,"member_id":M`)
		}
	}
	want := outputs["etcdctl on etcd"]
	for _, run := range []string{"etcdctl on kvd", "kvctl on kvd"} {
		if outputs[run] != want {
			t.Errorf("%s differs from etcdctl on etcd:\n%s\nwant:\n%s", run, outputs[run], want)
		}
	}
	if !strings.Contains(want, "DELETE\n/w/b\n") {
		t.Fatalf("no delete event in:\n%s", want)
	}
}
