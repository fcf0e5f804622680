package robustness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Event types, as the watch API names them.
const (
	EventPut    = "put"
	EventDelete = "delete"
)

// Event is one watch event of a workload key. For a delete, ModRev is
// the revision of the delete and the other revisions and the version are
// 0, as etcd sends them.
type Event struct {
	Type      string `json:"type"`
	Key       string `json:"key"`
	Value     string `json:"value,omitempty"`
	CreateRev int64  `json:"createRev,omitempty"`
	ModRev    int64  `json:"modRev"`
	Version   int64  `json:"version,omitempty"`
	Lease     int64  `json:"lease,omitempty"`
}

func eventOf(ev *clientv3.Event) Event {
	e := Event{Type: EventPut, Key: string(ev.Kv.Key), Value: string(ev.Kv.Value),
		CreateRev: ev.Kv.CreateRevision, ModRev: ev.Kv.ModRevision, Version: ev.Kv.Version, Lease: ev.Kv.Lease}
	if ev.Type == mvccpb.DELETE {
		e.Type = EventDelete
	}
	return e
}

// EventLog is the store's history of the workload keys over the
// revisions (From, To], in revision order, as replayed by watches opened
// after the events happened (see logReader).
type EventLog struct {
	From, To int64
	Events   []Event
}

// Written returns the revision at which each put value was written.
func (l *EventLog) Written() map[string]int64 {
	written := map[string]int64{}
	for _, ev := range l.Events {
		if ev.Type == EventPut {
			written[ev.Value] = ev.ModRev
		}
	}
	return written
}

// WatchResponse is one watch response as a watcher received it.
type WatchResponse struct {
	At       time.Duration // since the watchers started, client clock
	Revision int64         // header revision
	Member   uint64        // header member id: the member that sent it
	Events   int
}

// WatchRecord is everything one watcher received.
type WatchRecord struct {
	ID        int
	Events    []Event
	Responses []WatchResponse
	// Problems are responses no watcher should get in this test: a
	// cancellation, an error, or a header revision below its own events.
	Problems []string
	// NoLeader counts the times the watch was ended because its member
	// had lost the leader, and was started again from the revision after
	// its last event.
	NoLeader int
}

// Resumes counts how many times the watch moved to another member: each
// is a resume after its member failed, whose continuity CheckWatch
// checks.
func (r WatchRecord) Resumes() int {
	n := 0
	for i := 1; i < len(r.Responses); i++ {
		if r.Responses[i].Member != r.Responses[i-1].Member {
			n++
		}
	}
	return n
}

// watcher is one recording watch with its own client.
type watcher struct {
	c         *clientv3.Client
	delivered atomic.Int64 // mod revision of the last event received

	mu  sync.Mutex
	rec WatchRecord
}

// Watchers runs watchers over the workload keys from the start of a run,
// and a logReader that builds the event log they are checked against.
type Watchers struct {
	start   time.Time
	fromRev int64
	ws      []*watcher
	log     *logReader
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	complete bool // the log reached the revision Stop was given
}

// StartWatchers starts n watchers of the prefix "key" from revision
// fromRev+1, each with its own client over every endpoint, and the event
// log reader. When a watch's member dies, clientv3 resumes it on another
// member from the revision after its last event, which is what the
// checker verifies across faults. Each watch also asks for a leader: a
// member cut off from the others then ends it with "no leader", and the
// watcher starts it again from the revision after its last event, as an
// application would; the checker verifies that continuity too.
func StartWatchers(ctx context.Context, eps []string, n int, fromRev int64) (*Watchers, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &Watchers{start: time.Now(), fromRev: fromRev, cancel: cancel}
	lc, err := newClient(eps)
	if err != nil {
		cancel()
		return nil, err
	}
	w.log = &logReader{c: lc, log: EventLog{From: fromRev, To: fromRev}}
	w.log.progress.Store(fromRev)
	for i := 0; i < n; i++ {
		c, err := newClient(eps)
		if err != nil {
			w.closeClients()
			cancel()
			return nil, err
		}
		wt := &watcher{c: c, rec: WatchRecord{ID: i}}
		wt.delivered.Store(fromRev)
		w.ws = append(w.ws, wt)
	}
	for _, wt := range w.ws {
		w.wg.Add(1)
		go func(wt *watcher) {
			defer w.wg.Done()
			wt.run(ctx, fromRev, w.start)
		}(wt)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.log.run(ctx)
	}()
	return w, nil
}

func newClient(eps []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

func (w *Watchers) closeClients() {
	w.log.c.Close()
	for _, wt := range w.ws {
		wt.c.Close()
	}
}

func (wt *watcher) run(ctx context.Context, fromRev int64, start time.Time) {
	next := fromRev + 1
	for next > 0 && ctx.Err() == nil {
		if next = wt.watch(ctx, next, start); next > 0 {
			// Refused for want of a leader: a member without one
			// refuses new watches at once, so pause before the next
			// try, which the client's balancer sends to another member.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// watch follows one watch from revision from until it ends, and returns
// the revision to watch from again, or 0 to stop.
func (wt *watcher) watch(ctx context.Context, from int64, start time.Time) int64 {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range wt.c.Watch(wctx, "key", clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if ctx.Err() != nil {
			// Stopping: what the watch says now is about its end.
			return 0
		}
		if wr.Canceled && errors.Is(wr.Err(), rpctypes.ErrNoLeader) {
			wt.mu.Lock()
			wt.rec.NoLeader++
			wt.mu.Unlock()
			return wt.delivered.Load() + 1
		}
		wt.mu.Lock()
		resp := WatchResponse{At: time.Since(start), Revision: wr.Header.Revision, Member: wr.Header.MemberId, Events: len(wr.Events)}
		wt.rec.Responses = append(wt.rec.Responses, resp)
		if wr.Canceled || wr.Err() != nil {
			wt.rec.Problems = append(wt.rec.Problems, fmt.Sprintf("at %v: canceled %v, compact revision %d, error %v",
				resp.At, wr.Canceled, wr.CompactRevision, wr.Err()))
		}
		for _, ev := range wr.Events {
			e := eventOf(ev)
			if e.ModRev > wr.Header.Revision {
				wt.rec.Problems = append(wt.rec.Problems, fmt.Sprintf("at %v: event at revision %d in a response of revision %d",
					resp.At, e.ModRev, wr.Header.Revision))
			}
			wt.rec.Events = append(wt.rec.Events, e)
		}
		wt.mu.Unlock()
		if n := len(wr.Events); n > 0 {
			wt.delivered.Store(wr.Events[n-1].Kv.ModRevision)
		}
	}
	if ctx.Err() == nil {
		wt.mu.Lock()
		wt.rec.Problems = append(wt.rec.Problems, fmt.Sprintf("at %v: watch channel closed", time.Since(start)))
		wt.mu.Unlock()
	}
	return 0
}

// CompactBound is the highest revision the workload may compact at now.
// etcd and kvd cancel a watch that asks for a compacted revision, and
// clientv3 resumes a watch from the revision after the last event it
// received; the log reader, too, replays from the revision after its
// last one. Compacting no higher than the least of those revisions that
// every watcher and the log reader have reached keeps every resume and
// every replay within the history that is still there.
func (w *Watchers) CompactBound() int64 {
	if w == nil {
		return 0
	}
	bound := w.log.progress.Load()
	for _, wt := range w.ws {
		bound = min(bound, wt.delivered.Load())
	}
	return bound
}

// Stop waits until every watcher has received the events up to lastRev
// and the event log reaches it, or ctx ends, then stops them. lastRev is
// the store's revision after the workload ended.
func (w *Watchers) Stop(ctx context.Context, lastRev int64) error {
	defer w.closeClients()
	defer w.wg.Wait()
	defer w.cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var lagging []string
		if p := w.log.progress.Load(); p < lastRev {
			lagging = append(lagging, fmt.Sprintf("event log at %d", p))
		}
		for i, wt := range w.ws {
			if d := wt.delivered.Load(); d < lastRev {
				lagging = append(lagging, fmt.Sprintf("watcher %d at %d", i, d))
			}
		}
		if len(lagging) == 0 {
			w.mu.Lock()
			w.complete = true
			w.mu.Unlock()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for revision %d: %v: %v", lastRev, lagging, ctx.Err())
		case <-tick.C:
		}
	}
}

// Log returns the event log once Stop has seen it complete, and nil
// otherwise: a log that ends early would wrongly settle failed writes
// made after its end as never made.
func (w *Watchers) Log() *EventLog {
	w.mu.Lock()
	complete := w.complete
	w.mu.Unlock()
	if !complete {
		return nil
	}
	return w.log.snapshot()
}

// Records returns what each watcher received.
func (w *Watchers) Records() []WatchRecord {
	recs := make([]WatchRecord, len(w.ws))
	for i, wt := range w.ws {
		wt.mu.Lock()
		recs[i] = wt.rec
		recs[i].Events = append([]Event(nil), wt.rec.Events...)
		wt.mu.Unlock()
	}
	return recs
}

// logReader builds the event log while the run goes on, in slices: every
// so often it opens a new watch from the revision after the last one it
// has and reads up to the revision the store was at just before. Each
// slice is thus replayed from stored history, a different path in the
// server from the live notifications the watchers mostly get. It has to
// be read during the run rather than after it, because the workload
// compacts history as it goes.
type logReader struct {
	c        *clientv3.Client
	progress atomic.Int64 // the log's To

	mu  sync.Mutex
	log EventLog
}

func (l *logReader) run(ctx context.Context) {
	for ctx.Err() == nil {
		// An error (a member down, no leader) is retried at the next
		// round, from where the log stands.
		_ = l.catchUp(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (l *logReader) catchUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	from := l.progress.Load()
	to, err := storeRevision(ctx, l.c)
	if err != nil || to <= from {
		return err
	}
	evs, err := replay(ctx, l.c, from, to)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.log.Events = append(l.log.Events, evs...)
	l.log.To = to
	l.mu.Unlock()
	l.progress.Store(to)
	return nil
}

func (l *logReader) snapshot() *EventLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &EventLog{From: l.log.From, To: l.log.To, Events: append([]Event(nil), l.log.Events...)}
}

// storeRevision is the store's revision, read with a linearizable
// read.
func storeRevision(ctx context.Context, c *clientv3.Client) (int64, error) {
	resp, err := c.Get(ctx, "key", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// CurrentRevision is the store's revision, from a client of its own.
func CurrentRevision(ctx context.Context, eps []string) (int64, error) {
	c, err := newClient(eps)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return storeRevision(ctx, c)
}

// replay returns the workload keys' events of the revisions (from, to],
// which must have happened already. It relies on a watch response never
// splitting the events of one revision (etcd batches whole revisions, as
// kvd does), so the response holding an event at to holds all of them.
func replay(ctx context.Context, c *clientv3.Client, from, to int64) ([]Event, error) {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	var evs []Event
	for wr := range c.Watch(ctx, "key", clientv3.WithPrefix(), clientv3.WithRev(from+1)) {
		if err := wr.Err(); err != nil {
			return nil, err
		}
		done := false
		for _, ev := range wr.Events {
			if ev.Kv.ModRevision > to {
				done = true
				break
			}
			evs = append(evs, eventOf(ev))
			done = ev.Kv.ModRevision == to
		}
		if done {
			return evs, nil
		}
	}
	return nil, fmt.Errorf("watch from %d ended before revision %d: %v", from+1, to, ctx.Err())
}

// StopAtCurrent reads the store's revision once the workload is over,
// retrying while ctx lasts as a member may be restarting, and stops the
// watchers at it (see Stop). It returns that revision.
func (w *Watchers) StopAtCurrent(ctx context.Context) (int64, error) {
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rev, err := storeRevision(rctx, w.log.c)
		cancel()
		if err == nil {
			return rev, w.Stop(ctx, rev)
		}
		if ctx.Err() != nil {
			w.cancel()
			w.wg.Wait()
			w.closeClients()
			return 0, fmt.Errorf("reading the last revision: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
