package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestWatchAgainstServers runs watches against kvd and a real etcd
// v3.7.3. The server's request limit is small so that replaying 600 KB of
// events overflows the limit plus the 512 KiB allowance and needs
// fragments.
func TestWatchAgainstServers(t *testing.T) {
	for name, start := range map[string]func(testing.TB, ...string) *framework.Member{
		"etcd": framework.StartEtcd,
		"kvd":  framework.StartKvd,
	} {
		t.Run(name, func(t *testing.T) {
			m := start(t, "--max-request-bytes=4096")
			testWatchAll(t, newTestClient(t, Config{Endpoints: []string{m.Endpoint}}))
		})
	}
}

func testWatchAll(t *testing.T, c *Client) {
	for _, tt := range []struct {
		name string
		fn   func(*testing.T, *Client)
	}{
		{"Events", testWatchEvents},
		{"Prefix", testWatchPrefix},
		{"Replay", testWatchReplay},
		{"PrevKV", testWatchPrevKV},
		{"Filters", testWatchFilters},
		{"Compacted", testWatchCompacted},
		{"Progress", testWatchProgress},
		{"ProgressRightAfterWatch", testWatchProgressRightAfterWatch},
		{"Fragments", testWatchFragments},
		{"SharedStream", testWatchSharedStream},
		{"ContextCloses", testWatchContextCloses},
		{"StreamEndsWithLastWatch", testWatchStreamEndsWithLastWatch},
		{"SlowReader", testWatchSlowReader},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, c) })
	}
}

// next waits for the next response on wc.
func next(t *testing.T, wc WatchChan) WatchResponse {
	t.Helper()
	select {
	case r, ok := <-wc:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no watch response in 10s")
	}
	return WatchResponse{}
}

// collect reads events from wc until it holds n of them.
func collect(t *testing.T, wc WatchChan, n int) []*mvccpb.Event {
	t.Helper()
	var evs []*mvccpb.Event
	for len(evs) < n {
		r := next(t, wc)
		if r.Canceled {
			t.Fatalf("watch canceled: %v", r.Err())
		}
		evs = append(evs, r.Events...)
	}
	return evs
}

// describe is "TYPE key=value@rev" per event.
func describe(evs []*mvccpb.Event) string {
	var parts []string
	for _, ev := range evs {
		s := fmt.Sprintf("%s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
		if ev.PrevKv != nil {
			s += fmt.Sprintf(" prev=%s", ev.PrevKv.Value)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func watchCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

func testWatchEvents(t *testing.T, c *Client) {
	ctx := testCtx(t)
	wc := c.Watch(watchCtx(t), "/w/a", WithCreatedNotify())
	created := next(t, wc)
	if !created.Created || len(created.Events) != 0 || created.Header.GetRevision() == 0 {
		t.Fatalf("first response %+v, want the created notice", created)
	}
	r1 := try(c.Put(ctx, "/w/a", "1")).must(t).Header.Revision
	try(c.Put(ctx, "/w/b", "other key")).must(t)
	r2 := try(c.Put(ctx, "/w/a", "2")).must(t).Header.Revision
	r3 := try(c.Delete(ctx, "/w/a")).must(t).Header.Revision
	want := fmt.Sprintf("PUT /w/a=1@%d, PUT /w/a=2@%d, DELETE /w/a=@%d", r1, r2, r3)
	if got := describe(collect(t, wc, 3)); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
}

func testWatchPrefix(t *testing.T, c *Client) {
	ctx := testCtx(t)
	wc := c.Watch(watchCtx(t), "/p/", WithPrefix(), WithCreatedNotify())
	next(t, wc)
	try(c.Put(ctx, "/p/1", "a")).must(t)
	try(c.Put(ctx, "/q", "outside")).must(t)
	try(c.Put(ctx, "/p", "outside too")).must(t)
	try(c.Put(ctx, "/p/2", "b")).must(t)
	evs := collect(t, wc, 2)
	if len(evs) != 2 || string(evs[0].Kv.Key) != "/p/1" || string(evs[1].Kv.Key) != "/p/2" {
		t.Fatalf("prefix events %s", describe(evs))
	}
	rc := c.Watch(watchCtx(t), "/p/1", WithRange("/p/2"), WithRev(evs[0].Kv.ModRevision))
	if got := collect(t, rc, 1); string(got[0].Kv.Key) != "/p/1" {
		t.Fatalf("range events %s", describe(got))
	}
}

func testWatchReplay(t *testing.T, c *Client) {
	ctx := testCtx(t)
	first := try(c.Put(ctx, "/r/a", "1")).must(t).Header.Revision
	try(c.Put(ctx, "/r/b", "2")).must(t)
	try(c.Delete(ctx, "/r/a")).must(t)
	wc := c.Watch(watchCtx(t), "/r/", WithPrefix(), WithRev(first))
	want := fmt.Sprintf("PUT /r/a=1@%d, PUT /r/b=2@%d, DELETE /r/a=@%d", first, first+1, first+2)
	if got := describe(collect(t, wc, 3)); got != want {
		t.Fatalf("replay %s, want %s", got, want)
	}
}

func testWatchPrevKV(t *testing.T, c *Client) {
	ctx := testCtx(t)
	rev := try(c.Put(ctx, "/pk", "old")).must(t).Header.Revision
	try(c.Put(ctx, "/pk", "new")).must(t)
	try(c.Delete(ctx, "/pk")).must(t)
	wc := c.Watch(watchCtx(t), "/pk", WithRev(rev), WithPrevKV())
	want := fmt.Sprintf("PUT /pk=old@%d, PUT /pk=new@%d prev=old, DELETE /pk=@%d prev=new", rev, rev+1, rev+2)
	if got := describe(collect(t, wc, 3)); got != want {
		t.Fatalf("prev kv %s, want %s", got, want)
	}
}

func testWatchFilters(t *testing.T, c *Client) {
	ctx := testCtx(t)
	rev := try(c.Put(ctx, "/fl", "1")).must(t).Header.Revision
	try(c.Delete(ctx, "/fl")).must(t)
	try(c.Put(ctx, "/fl", "2")).must(t)
	last := try(c.Delete(ctx, "/fl")).must(t).Header.Revision
	noPut := c.Watch(watchCtx(t), "/fl", WithRev(rev), WithFilterPut())
	if got, want := describe(collect(t, noPut, 2)), fmt.Sprintf("DELETE /fl=@%d, DELETE /fl=@%d", rev+1, last); got != want {
		t.Errorf("without puts: %s, want %s", got, want)
	}
	noDel := c.Watch(watchCtx(t), "/fl", WithRev(rev), WithFilterDelete())
	if got, want := describe(collect(t, noDel, 2)), fmt.Sprintf("PUT /fl=1@%d, PUT /fl=2@%d", rev, rev+2); got != want {
		t.Errorf("without deletes: %s, want %s", got, want)
	}
}

func testWatchCompacted(t *testing.T, c *Client) {
	ctx := testCtx(t)
	old := try(c.Put(ctx, "/cp", "1")).must(t).Header.Revision
	rev := try(c.Put(ctx, "/cp", "2")).must(t).Header.Revision
	try(c.Compact(ctx, rev)).must(t)
	wc := c.Watch(watchCtx(t), "/cp", WithRev(old))
	r := next(t, wc)
	if !r.Canceled || r.CompactRevision != rev || !errors.Is(r.Err(), rpctypes.ErrCompacted) {
		t.Fatalf("response %+v (err %v), want canceled at compact revision %d", r, r.Err(), rev)
	}
	select {
	case r, ok := <-wc:
		if ok {
			t.Fatalf("response after the cancellation: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after the cancellation")
	}
}

func testWatchProgress(t *testing.T, c *Client) {
	ctx := testCtx(t)
	wc := c.Watch(watchCtx(t), "/never", WithCreatedNotify())
	next(t, wc)
	rev := try(c.Put(ctx, "/elsewhere", "x")).must(t).Header.Revision
	if err := c.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	r := next(t, wc)
	if !r.IsProgressNotify() || r.Header.Revision < rev {
		t.Fatalf("response %+v, want a progress notice at revision %d or later", r, rev)
	}
}

// testWatchProgressRightAfterWatch asks for progress while the watch is
// still being created (kvctl watch -i does so with "watch" and "progress"
// lines typed together): the notice must still reach the new watch.
func testWatchProgressRightAfterWatch(t *testing.T, c *Client) {
	ctx := testCtx(t)
	for i := range 20 {
		wctx, cancel := context.WithCancel(context.Background())
		wc := c.Watch(wctx, fmt.Sprintf("/never/%d", i))
		if err := c.RequestProgress(ctx); err != nil {
			t.Fatal(err)
		}
		if r := next(t, wc); !r.IsProgressNotify() {
			t.Fatalf("round %d: response %+v, want a progress notice", i, r)
		}
		cancel()
	}
}

func testWatchFragments(t *testing.T, c *Client) {
	ctx := testCtx(t)
	const n = 150
	big := strings.Repeat("v", 4000)
	first := try(c.Put(ctx, "/fr/000", big)).must(t).Header.Revision
	for i := 1; i < n; i++ {
		try(c.Put(ctx, fmt.Sprintf("/fr/%03d", i), big)).must(t)
	}
	wc := c.Watch(watchCtx(t), "/fr/", WithPrefix(), WithRev(first), WithFragment())
	r := next(t, wc)
	if len(r.Events) != n {
		t.Fatalf("one response of %d events, want all %d joined", len(r.Events), n)
	}
	for i, ev := range r.Events {
		if ev.Kv.ModRevision != first+int64(i) {
			t.Fatalf("event %d at revision %d, want %d", i, ev.Kv.ModRevision, first+int64(i))
		}
	}
}

func testWatchSharedStream(t *testing.T, c *Client) {
	ctx := testCtx(t)
	var wcs []WatchChan
	for i := range 5 {
		wcs = append(wcs, c.Watch(watchCtx(t), fmt.Sprintf("/s/%d", i), WithCreatedNotify()))
	}
	for _, wc := range wcs {
		next(t, wc)
	}
	w := c.Watcher.(*watcher)
	w.mu.Lock()
	n := len(w.streams)
	w.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d streams for watches with the same metadata, want 1", n)
	}
	for i := range 5 {
		try(c.Put(ctx, fmt.Sprintf("/s/%d", i), "x")).must(t)
	}
	for i, wc := range wcs {
		if evs := collect(t, wc, 1); string(evs[0].Kv.Key) != fmt.Sprintf("/s/%d", i) {
			t.Fatalf("watch %d got %s", i, describe(evs))
		}
	}
}

func testWatchContextCloses(t *testing.T, c *Client) {
	ctx, cancel := context.WithCancel(context.Background())
	wc := c.Watch(ctx, "/cc", WithCreatedNotify())
	next(t, wc)
	cancel()
	select {
	case _, ok := <-wc:
		if ok {
			t.Fatal("response after the context ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after the context ended")
	}
	// The stream still serves other watches.
	wc = c.Watch(watchCtx(t), "/cc", WithCreatedNotify())
	next(t, wc)
	try(c.Put(testCtx(t), "/cc", "x")).must(t)
	collect(t, wc, 1)
}

// testWatchStreamEndsWithLastWatch: once its last watch ends, a stream
// is closed rather than held open on the server, and a later watch with
// the same metadata opens a new one that works.
func testWatchStreamEndsWithLastWatch(t *testing.T, c *Client) {
	c = newTestClient(t, Config{Endpoints: c.Endpoints()}) // no other watch shares its streams
	w := c.Watcher.(*watcher)
	streams := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.streams)
	}
	for round := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		wc := c.Watch(ctx, "/last", WithCreatedNotify())
		next(t, wc)
		if n := streams(); n != 1 {
			t.Fatalf("round %d: %d streams with one watch", round, n)
		}
		try(c.Put(testCtx(t), "/last", "x")).must(t)
		collect(t, wc, 1)
		cancel()
		deadline := time.Now().Add(5 * time.Second)
		for streams() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: stream still open 5s after its last watch ended", round)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// testWatchSlowReader leaves a watch unread while many responses
// arrive: the stream stops reading once the watch's small buffer is full
// (the server holds the rest), and nothing is lost when reading resumes.
func testWatchSlowReader(t *testing.T, c *Client) {
	ctx := testCtx(t)
	wc := c.Watch(watchCtx(t), "/slow/", WithPrefix(), WithCreatedNotify())
	next(t, wc)
	const n = 200
	first := try(c.Put(ctx, "/slow/0", "v")).must(t).Header.Revision
	for i := 1; i < n; i++ {
		try(c.Put(ctx, fmt.Sprintf("/slow/%d", i), "v")).must(t)
	}
	time.Sleep(300 * time.Millisecond)
	evs := collect(t, wc, n)
	for i, ev := range evs {
		if ev.Kv.ModRevision != first+int64(i) {
			t.Fatalf("event %d at revision %d, want %d", i, ev.Kv.ModRevision, first+int64(i))
		}
	}
}

// TestWatchResumesAfterKill writes keys to a three-member cluster, of kvd
// and of etcd, while killing the member the watch's stream is on: the
// watch must resume on another member and deliver every write exactly
// once.
func TestWatchResumesAfterKill(t *testing.T) {
	for name, bin := range map[string]func(testing.TB) string{
		"etcd": func(t testing.TB) string { return framework.RequireBin(t, framework.EtcdBin()) },
		"kvd":  framework.KvdBin,
	} {
		t.Run(name, func(t *testing.T) { testWatchResumesAfterKill(t, bin(t)) })
	}
}

func testWatchResumesAfterKill(t *testing.T, bin string) {
	ms := framework.StartCluster(t, bin, 3)
	var eps []string
	for _, m := range ms {
		eps = append(eps, m.Endpoint)
	}
	c := newTestClient(t, Config{Endpoints: eps, DialTimeout: time.Second})
	writer := newTestClient(t, Config{Endpoints: eps, DialTimeout: time.Second})
	ctx := testCtx(t)

	wc := c.Watch(watchCtx(t), "/kill/", WithPrefix(), WithCreatedNotify())
	created := next(t, wc)
	list := try(c.MemberList(ctx)).must(t)
	var victim *framework.Member
	for _, mem := range list.Members {
		if mem.ID == created.Header.MemberId {
			for _, m := range ms {
				if m.Name == mem.Name {
					victim = m
				}
			}
		}
	}
	if victim == nil {
		t.Fatalf("no member with the watch's member ID %x", created.Header.MemberId)
	}

	var (
		mu   sync.Mutex
		seen []int64
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for r := range wc {
			mu.Lock()
			for _, ev := range r.Events {
				seen = append(seen, ev.Kv.ModRevision)
			}
			mu.Unlock()
		}
	}()

	const n = 300
	for i := range n {
		if i == n/3 {
			victim.Kill()
		}
		pctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, _ = writer.Put(pctx, fmt.Sprintf("/kill/%03d", i), "v") // a failed put may or may not have been applied
		cancel()
	}
	hist := try(writer.Get(ctx, "/kill/", WithPrefix())).must(t)
	if len(hist.Kvs) < n/2 {
		t.Fatalf("only %d of %d writes applied", len(hist.Kvs), n)
	}
	want := map[int64]bool{}
	var last int64
	for _, kv := range hist.Kvs {
		want[kv.ModRevision] = true
		last = max(last, kv.ModRevision)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := append([]int64(nil), seen...)
		mu.Unlock()
		if len(got) > 0 && got[len(got)-1] >= last || time.Now().After(deadline) {
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("revision %d after %d: repeated or out of order", got[i], got[i-1])
				}
			}
			for _, r := range got {
				if !want[r] {
					t.Errorf("event at revision %d, which no key has", r)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("saw %d events, the keys show %d writes", len(got), len(want))
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Close()
	<-done
}
