package client

import (
	"context"
	"errors"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// watchStream runs one gRPC Watch stream and every watch on it.
type watchStream struct {
	w        *watcher
	ctx      context.Context
	reqc     chan *watchSub
	closingc chan *watchSub
	progc    chan struct{}
	donec    chan struct{}

	// Owned by run.
	subs          map[int64]*watchSub // created on the current stream
	queue         []*watchSub         // waiting for a created response; the head's is asked for
	inflight      bool
	order         []*watchSub // every live watch in creation order, for resuming
	requireLeader bool        // the stream's metadata asks for a leader
	closeErr      error       // why the stream stopped for good, told to its watches
	// progressOwed is a progress request held back until no creation is
	// under way: asked earlier, the server may answer it before naming
	// the new watch, and the notice would reach nobody.
	progressOwed bool
}

func (st *watchStream) run() {
	defer close(st.donec)
	defer st.closeAll()
	delay := firstRetryDelay
	for {
		stream, err := st.w.remote.Watch(st.ctx)
		if err != nil {
			if st.ctx.Err() != nil {
				return
			}
			st.w.c.log.Debug("watch stream open failed", "error", err, "retry-after", delay)
			if !st.waitRetry(delay, err) {
				return
			}
			delay = min(2*delay, maxRetryDelay)
			continue
		}
		err = st.serve(stream)
		if st.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errStreamIdle) {
			return
		}
		if st.requireLeader && errors.Is(rpctypes.Error(err), rpctypes.ErrNoLeader) {
			// The caller asked to hear of this rather than wait on a
			// member cut off from the others, as with clientv3.
			st.closeErr = rpctypes.ErrNoLeader
			return
		}
		st.w.c.log.Debug("watch stream broken, resuming", "error", err)
		received := st.resetForResume()
		if !received && !st.waitRetry(delay, err) {
			return
		}
		if received {
			delay = firstRetryDelay
		} else {
			delay = min(2*delay, maxRetryDelay)
		}
	}
}

// waitRetry pauses before the next attempt, renewing the auth token
// when the server refused it, while still accepting watches and their
// cancellation.
func (st *watchStream) waitRetry(d time.Duration, err error) bool {
	if st.w.c.auth.shouldRefresh(err) {
		if aerr := st.w.c.auth.refresh(st.ctx, st.w.c.conn); aerr != nil {
			st.w.c.log.Debug("watch auth refresh failed", "error", aerr)
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-st.ctx.Done():
			return false
		case s := <-st.reqc:
			st.add(s)
		case s := <-st.closingc:
			st.drop(s, nil)
		case <-st.progc:
			st.progressOwed = true
		}
	}
}

// resetForResume forgets the broken stream's IDs and queues every live
// watch to be created again from the revision after the last one it
// delivered. It reports whether the broken stream had created anything,
// which means it was healthy and an immediate retry is worth it.
func (st *watchStream) resetForResume() bool {
	received := len(st.subs) > 0
	st.subs = map[int64]*watchSub{}
	st.queue = st.queue[:0]
	st.inflight = false
	live := st.order[:0]
	for _, s := range st.order {
		if s.gone {
			continue
		}
		s.id, s.frag = -1, nil
		live = append(live, s)
		st.queue = append(st.queue, s)
	}
	st.order = live
	return received
}

func (st *watchStream) add(s *watchSub) {
	st.order = append(st.order, s)
	st.queue = append(st.queue, s)
}

// serve runs one stream until it fails.
func (st *watchStream) serve(stream pb.Watch_WatchClient) error {
	ctx, cancel := context.WithCancel(st.ctx)
	defer cancel()
	respc := make(chan *pb.WatchResponse)
	errc := make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case respc <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	st.sendNext(stream)
	for {
		select {
		case s := <-st.reqc:
			st.add(s)
			st.sendNext(stream)
		case s := <-st.closingc:
			st.drop(s, stream)
			if st.idle() {
				_ = stream.CloseSend()
				return errStreamIdle
			}
		case <-st.progc:
			st.progressOwed = true
			st.sendNext(stream)
		case r := <-respc:
			st.handle(r, stream)
			if st.idle() {
				_ = stream.CloseSend()
				return errStreamIdle
			}
		case err := <-errc:
			return err
		case <-st.ctx.Done():
			_ = stream.CloseSend()
			return st.ctx.Err()
		}
	}
}

// sendNext asks for the creation of the first queued watch when no
// creation is under way: the server answers creations in order and
// names each new watch only in its answer. With none under way, it
// sends a progress request that was held back.
func (st *watchStream) sendNext(stream pb.Watch_WatchClient) {
	for !st.inflight && len(st.queue) > 0 {
		s := st.queue[0]
		if s.gone {
			st.queue = st.queue[1:]
			continue
		}
		st.inflight = true
		_ = stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: s.req}})
	}
	if !st.inflight && st.progressOwed {
		st.progressOwed = false
		_ = stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
	}
}

// drop ends a watch whose caller went away; stream is nil between streams.
func (st *watchStream) drop(s *watchSub, stream pb.Watch_WatchClient) {
	if s.gone {
		return
	}
	if s.id >= 0 && st.subs[s.id] == s {
		delete(st.subs, s.id)
		if stream != nil {
			st.sendCancel(stream, s.id)
		}
	}
	// A watch whose creation is under way is cancelled when the
	// server's answer names it.
	st.finish(s)
}

func (st *watchStream) sendCancel(stream pb.Watch_WatchClient, id int64) {
	_ = stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}})
}

// finish closes s's buffer, which ends its serve once drained, and
// forgets s, so a long-lived stream does not accumulate ended watches.
func (st *watchStream) finish(s *watchSub) {
	if !s.gone {
		s.gone = true
		close(s.recvc)
		st.order = slices.DeleteFunc(st.order, func(x *watchSub) bool { return x == s })
	}
}

// deliver hands r to s's buffer, waiting while it is full: a slow reader
// holds up the stream rather than making it buffer without bound.
func (st *watchStream) deliver(s *watchSub, r WatchResponse) {
	if s.gone {
		return
	}
	select {
	case s.recvc <- r:
	case <-s.ctx.Done():
	case <-st.ctx.Done():
	}
}

func toWatchResponse(r *pb.WatchResponse) WatchResponse {
	return WatchResponse{
		Header: r.Header, Events: r.Events, CompactRevision: r.CompactRevision,
		Canceled: r.Canceled, Created: r.Created, CancelReason: r.CancelReason,
	}
}

func (st *watchStream) handle(r *pb.WatchResponse, stream pb.Watch_WatchClient) {
	switch {
	case r.Created:
		if !st.inflight || len(st.queue) == 0 {
			return
		}
		s := st.queue[0]
		st.queue = st.queue[1:]
		st.inflight = false
		defer st.sendNext(stream)
		switch {
		case r.Canceled || r.WatchId == progressWatchID:
			// The server refused the watch.
			resp := toWatchResponse(r)
			resp.Canceled = true
			st.deliver(s, resp)
			st.finish(s)
			return
		case s.gone:
			st.sendCancel(stream, r.WatchId)
			return
		}
		s.id = r.WatchId
		st.subs[s.id] = s
		if s.req.StartRevision == 0 {
			// From now on, not from whenever a resume happens.
			s.req.StartRevision = r.Header.GetRevision() + 1
		}
		if !s.created {
			s.created = true
			if s.createdNotify {
				st.deliver(s, toWatchResponse(r))
			}
		}
		if len(r.Events) > 0 {
			st.events(s, r)
		}
	case r.WatchId == progressWatchID && len(r.Events) == 0 && !r.Canceled:
		for _, s := range st.order {
			if s.id >= 0 && st.subs[s.id] == s {
				st.events(s, r)
			}
		}
	default:
		s := st.subs[r.WatchId]
		if s == nil {
			return
		}
		if r.Fragment || s.frag != nil {
			if s.frag == nil {
				s.frag = r
				if r.Fragment {
					return
				}
			} else {
				s.frag.Events = append(s.frag.Events, r.Events...)
				s.frag.Header = r.Header
				if r.Fragment {
					return
				}
			}
			r, s.frag = s.frag, nil
			r.Fragment = false
		}
		if r.Canceled {
			delete(st.subs, r.WatchId)
			if r.CompactRevision != 0 {
				// The server stops sending but keeps the watch, which
				// would hold back progress notices, until told to drop it.
				st.sendCancel(stream, r.WatchId)
			}
			st.deliver(s, toWatchResponse(r))
			st.finish(s)
			return
		}
		st.events(s, r)
	}
}

// events delivers an event or progress response and moves the watch's
// resume point past it.
func (st *watchStream) events(s *watchSub, r *pb.WatchResponse) {
	if n := len(r.Events); n > 0 {
		s.req.StartRevision = r.Events[n-1].Kv.ModRevision + 1
	} else if rev := r.Header.GetRevision(); rev+1 > s.req.StartRevision {
		s.req.StartRevision = rev + 1
	}
	resp := toWatchResponse(r)
	resp.Created = false
	st.deliver(s, resp)
}

// idle says no watch is left on the stream or waiting to be created.
func (st *watchStream) idle() bool { return len(st.order) == 0 && len(st.queue) == 0 }
