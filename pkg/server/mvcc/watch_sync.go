package mvcc

import (
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

// notify hands the changes of the txn at rev to the synced watchers. It
// runs on the applier's goroutine and never blocks on a consumer: a
// watcher whose stream is full becomes unsynced and catches up later.
func (w *Watchable) notify(rev int64, changes []*mvccpb.KeyValue) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notified = rev
	// Gather each interested watcher's events, in the txn's order.
	var (
		order []*watcher
		picks = map[*watcher][]*mvccpb.Event{}
	)
	for _, kv := range changes {
		ev := eventOf(kv, rev)
		w.synced.watching(kv.Key, func(wt *watcher) {
			if rev < wt.next || !wt.wants(ev) {
				return
			}
			if _, seen := picks[wt]; !seen {
				order = append(order, wt)
			}
			if wt.PrevKV {
				ev := w.withPrev(ev)
				picks[wt] = append(picks[wt], ev)
				return
			}
			picks[wt] = append(picks[wt], ev)
		})
	}
	for _, wt := range order {
		if !wt.ws.trySend(&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: wt.ID, Events: picks[wt]}) {
			w.synced.remove(wt)
			w.unsynced.add(wt)
			continue
		}
		wt.next = rev + 1
		wt.sent = true
	}
	if w.unsynced.len() > 0 {
		w.wake()
	}
}

// eventOf turns a stored change into an event; a deletion is stored as
// the bare key.
func eventOf(kv *mvccpb.KeyValue, rev int64) *mvccpb.Event {
	if kv.CreateRevision == 0 {
		return &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: kv.Key, ModRevision: rev}}
	}
	return &mvccpb.Event{Type: mvccpb.PUT, Kv: kv}
}

// pick selects the events wt reports, adding previous values when it
// asked for them.
func (w *Watchable) pick(wt *watcher, events []*mvccpb.Event) []*mvccpb.Event {
	var out []*mvccpb.Event
	for _, ev := range events {
		if !wt.matches(ev.Kv.Key) || !wt.wants(ev) {
			continue
		}
		if wt.PrevKV {
			ev = w.withPrev(ev)
		}
		out = append(out, ev)
	}
	return out
}

// withPrev copies ev with the key's value just before the event, when
// that is still in the store.
func (w *Watchable) withPrev(ev *mvccpb.Event) *mvccpb.Event {
	res, err := w.s.Range(ev.Kv.Key, nil, RangeOptions{Rev: ev.Kv.ModRevision - 1})
	if err != nil || len(res.KVs) == 0 {
		return ev
	}
	return &mvccpb.Event{Type: ev.Type, Kv: ev.Kv, PrevKv: res.KVs[0]}
}

// syncLoop catches unsynced watchers up until Stop.
func (w *Watchable) syncLoop() {
	defer close(w.donec)
	t := time.NewTicker(syncInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stopc:
			return
		case <-w.kick:
		case <-t.C:
		}
		w.syncOnce()
	}
}

// syncOnce reads one batch of history for the unsynced watchers and
// delivers it; watchers that reach the present join the synced group. The
// backend is read without w.mu held, so notify, and with it the applier,
// never waits on a catch-up.
func (w *Watchable) syncOnce() {
	w.mu.Lock()
	from, to, ready := w.syncPlan()
	w.mu.Unlock()
	if len(ready) == 0 {
		return
	}
	events, err := w.s.history(from, to)
	if err != nil {
		w.lg.Error("read watch history", "from", from, "to", to, "err", err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	progressed := false
	for _, wt := range ready {
		if !w.unsynced.has(wt) || wt.next > to {
			continue // canceled, or served, meanwhile
		}
		var evs []*mvccpb.Event
		for _, e := range events {
			if e.rev >= wt.next {
				evs = append(evs, w.pick(wt, []*mvccpb.Event{e.ev})...)
			}
		}
		if len(evs) > 0 && !wt.ws.trySend(&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: to}, WatchId: wt.ID, Events: evs}) {
			continue
		}
		progressed = true
		wt.sent = wt.sent || len(evs) > 0
		wt.next = to + 1
		if to >= w.notified {
			w.unsynced.remove(wt)
			w.synced.add(wt)
		}
	}
	w.answerProgress()
	if progressed && w.unsynced.len() > 0 {
		w.wake()
	}
}

// syncPlan cancels the unsynced watchers whose history was compacted
// away, and picks the ones whose stream has room for more, with the
// revisions the next batch covers. w.mu is held.
func (w *Watchable) syncPlan() (from, to int64, ready []*watcher) {
	compactRev := w.s.CompactRev()
	from = -1
	for wt := range w.unsynced.all {
		if wt.next < compactRev {
			if wt.ws.trySend(&pb.WatchResponse{Header: &pb.ResponseHeader{}, WatchId: wt.ID, CompactRevision: compactRev, Canceled: true}) {
				w.unsynced.remove(wt)
				wt.ws.drop(wt)
			}
			continue
		}
		if len(wt.ws.ch) > cap(wt.ws.ch)/2 {
			continue // its consumer is behind; reading for it now is waste
		}
		ready = append(ready, wt)
		if from < 0 || wt.next < from {
			from = wt.next
		}
	}
	// Everything up to notified is in the backend; later txns are on
	// their way to notify, which skips what this round delivers.
	return from, min(w.notified, from+historyBatch-1), ready
}

// answerProgress sends the progress responses that waited for a stream's
// watchers to catch up; w.mu is held.
func (w *Watchable) answerProgress() {
	streams := map[*WatchStream]bool{}
	for wt := range w.synced.all {
		streams[wt.ws] = true
	}
	for ws := range streams {
		ws.mu.Lock()
		wanted := ws.progressWanted
		ws.mu.Unlock()
		if wanted && ws.allSyncedLocked() && ws.trySend(&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: w.notified}, WatchId: -1}) {
			ws.mu.Lock()
			ws.progressWanted = false
			ws.mu.Unlock()
		}
	}
}

// drop forgets a watcher the catch-up loop canceled.
func (ws *WatchStream) drop(wt *watcher) {
	ws.mu.Lock()
	if ws.watchers[wt.ID] == wt {
		delete(ws.watchers, wt.ID)
	}
	ws.mu.Unlock()
}

type revEvent struct {
	rev int64
	ev  *mvccpb.Event
}

// history reads the events of revisions from..to from the backend, in
// order.
func (s *Store) history(from, to int64) ([]revEvent, error) {
	var (
		out []revEvent
		err error
	)
	start := revKey(Revision{Main: from}, false)
	end := revKey(Revision{Main: to + 1}, false)
	s.be.Read(func(tx backend.ReadTx) {
		tx.ForEach(backend.Key, start, func(k, v []byte) bool {
			if string(k) >= string(end) {
				return false
			}
			r, tomb := parseRevKey(k)
			kv := new(mvccpb.KeyValue)
			if err = proto.Unmarshal(v, kv); err != nil {
				err = fmt.Errorf("decode revision %d.%d: %w", r.Main, r.Sub, err)
				return false
			}
			if tomb {
				kv = &mvccpb.KeyValue{Key: kv.Key}
			}
			out = append(out, revEvent{rev: r.Main, ev: eventOf(kv, r.Main)})
			return true
		})
	})
	return out, err
}
