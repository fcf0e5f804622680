package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestWatchersSeeExactlyTheirHistory: concurrent writers, watchers on
// overlapping ranges; each watcher sees exactly the acknowledged writes of
// its range, in revision order, without gaps or repeats.
func TestWatchersSeeExactlyTheirHistory(t *testing.T) {
	m := framework.StartKvd(t)
	c := newClientv3(t, m.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ranges := []struct{ key, end string }{
		{"o/", "o0"}, {"o/a", "o/b"}, {"o/a/1", ""}, {"o/b", "o/c"}, {"o/", "o/b"}, {"o/c", "o0"},
	}
	chans := make([]clientv3.WatchChan, len(ranges))
	for i, r := range ranges {
		opts := []clientv3.OpOption{clientv3.WithCreatedNotify()}
		if r.end != "" {
			opts = append(opts, clientv3.WithRange(r.end))
		}
		chans[i] = c.Watch(ctx, r.key, opts...)
		<-chans[i]
	}
	const writers, perWriter = 4, 100
	keys := []string{"o/a/1", "o/a/2", "o/b/1", "o/c/1", "o/d"}
	var mu sync.Mutex
	written := map[int64]string{} // revision -> key, from acknowledgements
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				k := keys[(w+i)%len(keys)]
				resp, err := c.Put(ctx, k, fmt.Sprint(w, i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				written[resp.Header.Revision] = k
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	revs := make([]int64, 0, len(written))
	for r := range written {
		revs = append(revs, r)
	}
	slices.Sort(revs)
	for i, r := range ranges {
		var want []string
		for _, rev := range revs {
			k := written[rev]
			if k == r.key || (r.end != "" && k >= r.key && k < r.end) {
				want = append(want, fmt.Sprintf("%s@%d", k, rev))
			}
		}
		var got []string
		for len(got) < len(want) {
			select {
			case resp := <-chans[i]:
				for _, ev := range resp.Events {
					got = append(got, fmt.Sprintf("%s@%d", ev.Kv.Key, ev.Kv.ModRevision))
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("watcher %v: %d of %d events", r, len(got), len(want))
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("watcher %v saw\n%v\nwant\n%v", r, got, want)
		}
	}
}

// TestWatchFragmentsLargeResponses: a watcher that allows fragments gets a
// transaction's events larger than a request may be in several responses,
// all but the last flagged, on kvd as on etcd.
func TestWatchFragmentsLargeResponses(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			m := srv.start(t, "--max-request-bytes", "65536")
			c := newClientv3(t, m.Endpoint)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			value := strings.Repeat("x", 16<<10)
			const keys = 40 // 1.3 MB with previous values, over 64 KiB plus gRPC's slack
			for i := range keys {
				if _, err := c.Put(ctx, fmt.Sprintf("f/%02d", i), value); err != nil {
					t.Fatal(err)
				}
			}
			conn, err := grpc.NewClient(m.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			stream, err := pb.NewWatchClient(conn).Watch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			create := &pb.WatchCreateRequest{Key: []byte("f/"), RangeEnd: []byte("f0"), PrevKv: true, Fragment: true}
			if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: create}}); err != nil {
				t.Fatal(err)
			}
			if r, err := stream.Recv(); err != nil || !r.Created {
				t.Fatalf("create: %v %v", r, err)
			}
			if _, err := c.Delete(ctx, "f/", clientv3.WithPrefix()); err != nil {
				t.Fatal(err)
			}
			events, parts := 0, 0
			for events < keys {
				r, err := stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				parts++
				events += len(r.Events)
				if r.Fragment != (events < keys) {
					t.Fatalf("response %d with %d events so far: fragment=%v", parts, events, r.Fragment)
				}
			}
			if parts < 2 {
				t.Fatalf("%d deletions with 16 KiB previous values came in %d response", keys, parts)
			}
		})
	}
}

// TestWatchProgressNotifyInterval: an idle watcher that asked for progress
// notifications hears the current revision every interval.
func TestWatchProgressNotifyInterval(t *testing.T) {
	m := framework.StartKvd(t, "--watch-progress-notify-interval", "200ms")
	c := newClientv3(t, m.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put, err := c.Put(ctx, "elsewhere", "x")
	if err != nil {
		t.Fatal(err)
	}
	for r := range c.Watch(ctx, "idle", clientv3.WithProgressNotify()) {
		if r.IsProgressNotify() {
			if r.Header.Revision != put.Header.Revision {
				t.Fatalf("progress at revision %d, want %d", r.Header.Revision, put.Header.Revision)
			}
			return
		}
	}
	t.Fatal("no progress notification within the test's time")
}
