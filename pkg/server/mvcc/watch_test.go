package mvcc

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func openWatchable(t *testing.T) (*testStore, *Watchable) {
	t.Helper()
	s := openStore(t, filepath.Join(t.TempDir(), "db"))
	w := NewWatchable(s.Store, nil)
	t.Cleanup(w.Stop)
	return s, w
}

// drain reads the stream's responses, grouped by watch ID, until done
// says enough or ten seconds pass.
func drain(t *testing.T, ws *WatchStream, done func(map[int64][]*pb.WatchResponse) bool) map[int64][]*pb.WatchResponse {
	t.Helper()
	got := map[int64][]*pb.WatchResponse{}
	deadline := time.After(10 * time.Second)
	for !done(got) {
		select {
		case r := <-ws.Chan():
			got[r.WatchId] = append(got[r.WatchId], r)
		case <-deadline:
			t.Fatalf("timed out; got %v", got)
		}
	}
	return got
}

func eventsOf(rs []*pb.WatchResponse) []*mvccpb.Event {
	var evs []*mvccpb.Event
	for _, r := range rs {
		evs = append(evs, r.Events...)
	}
	return evs
}

func describe(evs []*mvccpb.Event) string {
	var parts []string
	for _, e := range evs {
		s := fmt.Sprintf("%s %s@%d", e.Type, e.Kv.Key, e.Kv.ModRevision)
		if e.PrevKv != nil {
			s += "(prev " + string(e.PrevKv.Value) + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func TestWatchDeliversEachRangeInOrder(t *testing.T) {
	s, w := openWatchable(t)
	s.put(t, "a", "1") // rev 2, before the watchers: history
	ws := w.NewStream()
	defer ws.Close()
	cases := []struct {
		opts WatchOptions
		want string
	}{
		{WatchOptions{Key: []byte("a")}, "PUT a@3, DELETE a@5"},
		{WatchOptions{Key: []byte("a"), StartRev: 1}, "PUT a@2, PUT a@3, DELETE a@5"},
		{WatchOptions{Key: []byte("a"), End: []byte("c"), PrevKV: true}, "PUT a@3(prev 1), PUT b@4, DELETE a@5(prev 2)"},
		{WatchOptions{Key: []byte("a"), End: []byte{0}, NoPut: true}, "DELETE a@5"},
		{WatchOptions{Key: []byte("b"), StartRev: 5}, ""},
		{WatchOptions{Key: []byte("b"), StartRev: 4, NoDelete: true}, "PUT b@4"},
	}
	for i, tc := range cases {
		if id, err := ws.Watch(tc.opts); err != nil || id != int64(i) {
			t.Fatalf("watch %d: id %d, %v", i, id, err)
		}
	}
	s.put(t, "a", "2")
	s.put(t, "b", "1")
	s.del(t, "a", "")
	got := drain(t, ws, func(m map[int64][]*pb.WatchResponse) bool {
		for i, tc := range cases {
			if len(eventsOf(m[int64(i)])) < strings.Count(tc.want, "@") {
				return false
			}
		}
		return true
	})
	for i, tc := range cases {
		if !got[int64(i)][0].Created {
			t.Errorf("watch %d: first response is not the created one", i)
		}
		if d := describe(eventsOf(got[int64(i)])); d != tc.want {
			t.Errorf("watch %d: %q, want %q", i, d, tc.want)
		}
	}
	if _, err := ws.Watch(WatchOptions{ID: 2, Key: []byte("x")}); err != ErrDuplicateWatchID {
		t.Fatalf("reused watch ID: %v", err)
	}
}

// Concurrent writes against watchers that start in the past and in the
// present: each sees exactly the history of its key, in order.
func TestWatchCompletenessUnderWrites(t *testing.T) {
	s, w := openWatchable(t)
	const keys, writes = 4, 400
	for i := range writes / 2 {
		s.put(t, fmt.Sprintf("k%d", i%keys), fmt.Sprint(i))
	}
	ws := w.NewStream()
	defer ws.Close()
	for k := range keys {
		if _, err := ws.Watch(WatchOptions{Key: []byte(fmt.Sprintf("k%d", k)), StartRev: 1}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := writes / 2; i < writes; i++ {
			s.put(t, fmt.Sprintf("k%d", i%keys), fmt.Sprint(i))
		}
	}()
	got := drain(t, ws, func(m map[int64][]*pb.WatchResponse) bool {
		for k := range keys {
			if len(eventsOf(m[int64(k)])) < writes/keys {
				return false
			}
		}
		return true
	})
	<-done
	for k := range keys {
		evs := eventsOf(got[int64(k)])
		if len(evs) != writes/keys {
			t.Fatalf("key %d: %d events, want %d", k, len(evs), writes/keys)
		}
		for j, e := range evs {
			if want := int64(2 + k + j*keys); e.Kv.ModRevision != want {
				t.Fatalf("key %d event %d at rev %d, want %d", k, j, e.Kv.ModRevision, want)
			}
		}
	}
}

func TestWatchFromCompactedRevisionIsCanceled(t *testing.T) {
	s, w := openWatchable(t)
	for i := range 5 {
		s.put(t, "a", fmt.Sprint(i))
	}
	s.write(t, func(tw *TxnWrite) { _, _ = tw.Compact(4) })
	ws := w.NewStream()
	defer ws.Close()
	id, err := ws.Watch(WatchOptions{Key: []byte("a"), StartRev: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, ws, func(m map[int64][]*pb.WatchResponse) bool { return len(m[id]) >= 2 })
	if r := got[id][1]; !r.Canceled || r.CompactRevision != 4 {
		t.Fatalf("watch from a compacted revision: %v", r)
	}
	// From the compaction point itself, history is still there.
	id2, _ := ws.Watch(WatchOptions{Key: []byte("a"), StartRev: 4})
	got = drain(t, ws, func(m map[int64][]*pb.WatchResponse) bool { return len(eventsOf(m[id2])) >= 3 })
	if d := describe(eventsOf(got[id2])); d != "PUT a@4, PUT a@5, PUT a@6" {
		t.Fatalf("watch from the compaction point: %s", d)
	}
}

// A consumer that never reads does not hold up writes or other streams,
// and what it is owed waits in the backend, not in memory.
func TestSlowConsumerDoesNotBlock(t *testing.T) {
	s, w := openWatchable(t)
	stuck := w.NewStream()
	defer stuck.Close()
	if _, err := stuck.Watch(WatchOptions{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	live := w.NewStream()
	defer live.Close()
	id, _ := live.Watch(WatchOptions{Key: []byte("k")})
	const writes = 3 * streamBuffer
	go func() {
		for range writes {
			<-live.Chan() // keep the live consumer reading; counted below
		}
	}()
	_ = id
	start := time.Now()
	for i := range writes {
		s.put(t, "k", fmt.Sprint(i))
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("writes took %v with a stuck watcher", d)
	}
	if n := len(stuck.ch); n > streamBuffer {
		t.Fatalf("stuck stream holds %d responses", n)
	}
	w.mu.Lock()
	demoted := w.unsynced.has(stuck.watchers[0])
	w.mu.Unlock()
	if !demoted {
		t.Fatal("the stuck watcher was not moved to catch up from the backend")
	}
	// Once it reads, it gets everything, in order.
	var evs []*mvccpb.Event
	timeout := time.After(10 * time.Second)
	for len(evs) < writes {
		select {
		case r := <-stuck.Chan():
			evs = append(evs, r.Events...)
		case <-timeout:
			t.Fatalf("stuck watcher recovered %d of %d events", len(evs), writes)
		}
	}
	for i, e := range evs {
		if e.Kv.ModRevision != int64(i+2) {
			t.Fatalf("event %d at rev %d", i, e.Kv.ModRevision)
		}
	}
}

func TestProgress(t *testing.T) {
	s, w := openWatchable(t)
	s.put(t, "a", "1")
	ws := w.NewStream()
	defer ws.Close()
	id, _ := ws.Watch(WatchOptions{Key: []byte("z"), ProgressNotify: true})
	drain(t, ws, func(m map[int64][]*pb.WatchResponse) bool { return len(m[id]) == 1 })
	ws.RequestProgress()
	got := drain(t, ws, func(m map[int64][]*pb.WatchResponse) bool { return len(m[-1]) == 1 })
	if r := got[-1][0]; r.Header.Revision != 2 {
		t.Fatalf("progress at rev %d, want 2", r.Header.Revision)
	}
	ws.NotifyProgress()
	got = drain(t, ws, func(m map[int64][]*pb.WatchResponse) bool { return len(m[id]) == 1 })
	if r := got[id][0]; len(r.Events) != 0 || r.Header.Revision != 2 {
		t.Fatalf("progress notification: %v", r)
	}
}

// One busy prefix on a stream must not hold back another watcher of the
// same stream for long (etcd issue 17529): the quiet watcher's event waits
// at most for one buffer's worth of the busy one's.
func TestBusyWatcherDoesNotStarveItsNeighbour(t *testing.T) {
	s, w := openWatchable(t)
	ws := w.NewStream()
	defer ws.Close()
	hot, _ := ws.Watch(WatchOptions{Key: []byte("hot/"), End: []byte("hot0")})
	quiet, _ := ws.Watch(WatchOptions{Key: []byte("quiet")})
	arrived := make(chan time.Time, 1)
	go func() {
		for r := range ws.Chan() {
			if r.WatchId == quiet && len(r.Events) > 0 {
				arrived <- time.Now()
				return
			}
			time.Sleep(50 * time.Microsecond) // a consumer slower than the writer
		}
	}()
	var sentAt time.Time
	for i := range 4 * streamBuffer {
		if i == 2*streamBuffer {
			sentAt = time.Now()
			s.put(t, "quiet", "1")
		}
		s.put(t, fmt.Sprintf("hot/%d", i), "v")
	}
	select {
	case at := <-arrived:
		if d := at.Sub(sentAt); d > 5*time.Second {
			t.Fatalf("the quiet watcher waited %v behind the busy one", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the quiet watcher never got its event (hot watch %d)", hot)
	}
}
