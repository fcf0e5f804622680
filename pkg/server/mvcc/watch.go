package mvcc

import (
	"bytes"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Watching: a watcher is synced when it has seen every change up to the
// last write txn; the applier hands such watchers each txn's events as it
// commits (notify), without waiting for anyone. A watcher that starts in
// the past, or whose stream could not take an event in time, is unsynced:
// a background loop reads its missed history from the backend in bounded
// batches and moves it back to the synced group once it has caught up.
// Each watcher remembers the next revision it is owed, so an event is never
// delivered twice or skipped when it moves between the groups.

// ErrDuplicateWatchID is returned for a watch ID already used on a stream.
var ErrDuplicateWatchID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")

// streamBuffer bounds the responses waiting for one stream's consumer;
// past it, the stream's watchers fall back to catching up from the
// backend, so a slow consumer costs bounded memory and never blocks the
// applier.
const streamBuffer = 1024

// historyBatch bounds the revisions one catch-up round reads.
const historyBatch = 1000

// WatchOptions describe one watcher.
type WatchOptions struct {
	// ID is the watch ID the client asked for; 0 lets the stream choose.
	ID int64
	// Key and End are the range watched, as Range takes them.
	Key, End []byte
	// StartRev is the first revision to report; 0 means the next one.
	StartRev       int64
	PrevKV         bool
	NoPut          bool
	NoDelete       bool
	ProgressNotify bool
}

// Watchable delivers the store's changes to watchers.
type Watchable struct {
	s  *Store
	lg *slog.Logger

	mu       sync.Mutex
	synced   *watcherGroup
	unsynced *watcherGroup
	// notified is the revision of the last txn handed to synced watchers:
	// a synced watcher has had every event up to it.
	notified int64

	kick  chan struct{}
	stopc chan struct{}
	donec chan struct{}
	// streams counts the open streams, for metrics.
	streams atomic.Int64
}

type watcher struct {
	WatchOptions
	ws *WatchStream
	// next is the first revision the watcher has not been given.
	next int64
	// sent records that a response went out since the last progress tick.
	sent bool
}

// NewWatchable makes s's changes watchable and starts the catch-up loop,
// which runs until Stop. Call it before the first write.
func NewWatchable(s *Store, lg *slog.Logger) *Watchable {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	w := &Watchable{
		s:        s,
		lg:       lg,
		synced:   newWatcherGroup(),
		unsynced: newWatcherGroup(),
		notified: s.Rev(),
		kick:     make(chan struct{}, 1),
		stopc:    make(chan struct{}),
		donec:    make(chan struct{}),
	}
	s.observer = w.notify
	go w.syncLoop()
	return w
}

// Stop ends the catch-up loop.
func (w *Watchable) Stop() {
	close(w.stopc)
	<-w.donec
}

// Restored tells the watchers that the store's content was replaced by a
// snapshot: each catches up from the new content, or learns that what it
// is owed was compacted away.
func (w *Watchable) Restored() {
	w.mu.Lock()
	for wt := range w.synced.all {
		w.synced.remove(wt)
		w.unsynced.add(wt)
	}
	w.notified = w.s.Rev()
	w.mu.Unlock()
	w.wake()
}

// Counts returns how many watchers there are, how many of them are
// catching up from the database (slow), and how many streams are open.
func (w *Watchable) Counts() (watchers, slow, streams int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced.len() + w.unsynced.len(), w.unsynced.len(), int(w.streams.Load())
}

func (w *Watchable) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// WatchStream is a set of watchers whose responses share one channel, as
// the watchers of one gRPC stream do.
type WatchStream struct {
	w     *Watchable
	ch    chan *pb.WatchResponse
	donec chan struct{} // closed by Close

	mu       sync.Mutex
	watchers map[int64]*watcher
	nextID   int64
	// progressWanted is set by a progress request made while some
	// watcher was catching up; the catch-up loop answers it later.
	progressWanted bool
	closed         bool
}

// NewStream returns an empty stream.
func (w *Watchable) NewStream() *WatchStream {
	w.streams.Add(1)
	return &WatchStream{w: w, ch: make(chan *pb.WatchResponse, streamBuffer), donec: make(chan struct{}), watchers: map[int64]*watcher{}}
}

// Chan is where the stream's responses arrive, without headers other than
// the revision.
func (ws *WatchStream) Chan() <-chan *pb.WatchResponse { return ws.ch }

// Watch adds a watcher and returns its ID. Its created response is queued
// before any of its events can be.
func (ws *WatchStream) Watch(o WatchOptions) (int64, error) {
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		return 0, errors.New("mvcc: watch stream closed")
	}
	id := o.ID
	if id == 0 {
		for ws.watchers[ws.nextID] != nil {
			ws.nextID++
		}
		id = ws.nextID
		ws.nextID++
	} else if _, used := ws.watchers[id]; used {
		ws.mu.Unlock()
		return 0, ErrDuplicateWatchID
	}
	o.ID = id
	wt := &watcher{WatchOptions: o, ws: ws}
	ws.watchers[id] = wt
	ws.mu.Unlock()

	select {
	case ws.ch <- &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: ws.w.s.Rev()}, WatchId: id, Created: true}:
	case <-ws.donec:
		return 0, errors.New("mvcc: watch stream closed")
	}

	w := ws.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if ws.gone(wt) {
		return id, nil
	}
	wt.next = o.StartRev
	if wt.next <= 0 || wt.next > w.notified {
		wt.next = max(wt.next, w.notified+1)
		w.synced.add(wt)
		return id, nil
	}
	w.unsynced.add(wt)
	w.wake()
	return id, nil
}

// gone says whether wt was canceled meanwhile.
func (ws *WatchStream) gone(wt *watcher) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.watchers[wt.ID] != wt
}

// Cancel removes watcher id and reports whether it existed.
func (ws *WatchStream) Cancel(id int64) bool {
	ws.mu.Lock()
	wt, ok := ws.watchers[id]
	delete(ws.watchers, id)
	ws.mu.Unlock()
	if ok {
		ws.w.remove(wt)
	}
	return ok
}

// CancelWith removes watcher id and tells its client why, on the
// stream, after whatever was already queued for it; it waits for room on
// the stream, or for the stream to close. It reports whether the watcher
// existed.
func (ws *WatchStream) CancelWith(id int64, reason string) bool {
	if !ws.Cancel(id) {
		return false
	}
	select {
	case ws.ch <- &pb.WatchResponse{Header: &pb.ResponseHeader{}, WatchId: id, Canceled: true, CancelReason: reason}:
	case <-ws.donec:
	}
	return true
}

// Close removes every watcher of the stream.
func (ws *WatchStream) Close() {
	ws.mu.Lock()
	if !ws.closed {
		close(ws.donec)
		ws.w.streams.Add(-1)
	}
	ws.closed = true
	all := ws.watchers
	ws.watchers = map[int64]*watcher{}
	ws.mu.Unlock()
	for _, wt := range all {
		ws.w.remove(wt)
	}
}

func (w *Watchable) remove(wt *watcher) {
	w.mu.Lock()
	w.synced.remove(wt)
	w.unsynced.remove(wt)
	w.mu.Unlock()
}

// RequestProgress queues a progress response (watch ID -1) carrying a
// revision every watcher of the stream has seen all events up to; while
// some of them are still catching up, it is sent once they are done.
func (ws *WatchStream) RequestProgress() {
	w := ws.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if ws.allSyncedLocked() {
		ws.trySend(&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: w.notified}, WatchId: -1})
		return
	}
	ws.mu.Lock()
	ws.progressWanted = true
	ws.mu.Unlock()
}

// NotifyProgress sends a progress response to each synced watcher that
// asked for them and had nothing sent since the previous call.
func (ws *WatchStream) NotifyProgress() {
	w := ws.w
	w.mu.Lock()
	defer w.mu.Unlock()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for id, wt := range ws.watchers {
		if !wt.ProgressNotify {
			continue
		}
		if w.synced.has(wt) && !wt.sent {
			ws.trySend(&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: w.notified}, WatchId: id})
		}
		wt.sent = false
	}
}

// allSyncedLocked is called with w.mu held.
func (ws *WatchStream) allSyncedLocked() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, wt := range ws.watchers {
		if !ws.w.synced.has(wt) {
			return false
		}
	}
	return true
}

// trySend queues r unless the consumer is too far behind.
func (ws *WatchStream) trySend(r *pb.WatchResponse) bool {
	select {
	case ws.ch <- r:
		return true
	default:
		return false
	}
}

// matches says whether key is in the watched range.
func (o *WatchOptions) matches(key []byte) bool {
	switch {
	case len(o.End) == 0:
		return bytes.Equal(key, o.Key)
	case len(o.End) == 1 && o.End[0] == 0:
		return bytes.Compare(key, o.Key) >= 0
	}
	return bytes.Compare(key, o.Key) >= 0 && bytes.Compare(key, o.End) < 0
}

// wants says whether the watcher reports events of this type.
func (o *WatchOptions) wants(ev *mvccpb.Event) bool {
	if ev.Type == mvccpb.PUT {
		return !o.NoPut
	}
	return !o.NoDelete
}

// syncInterval is how often the catch-up loop runs when nothing wakes it.
const syncInterval = 100 * time.Millisecond
