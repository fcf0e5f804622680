package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Watcher follows changes to keys.
type Watcher interface {
	// Watch follows key, or a range of keys with WithPrefix, WithRange or
	// WithFromKey, from now on or from WithRev's revision. Responses
	// arrive in revision order on the returned channel, which is closed
	// when ctx ends, when the client is closed, or after a response
	// saying the server canceled the watch. A watch survives the loss of
	// its endpoint: it resumes on another one after the last event it
	// delivered.
	Watch(ctx context.Context, key string, opts ...OpOption) WatchChan
	// RequestProgress asks the server to send every watch sharing ctx's
	// stream an empty response with the current revision, once all of
	// them have caught up with it.
	RequestProgress(ctx context.Context) error
}

// WatchChan carries a watch's responses.
type WatchChan <-chan WatchResponse

// WatchResponse is one batch of events, or a notice about the watch.
type WatchResponse struct {
	Header *pb.ResponseHeader
	Events []*mvccpb.Event
	// CompactRevision, when set, is the oldest revision still kept: the
	// watch's start revision was compacted and the watch is canceled.
	CompactRevision int64
	// Canceled is set on the last response of a watch the server ended.
	Canceled bool
	// Created confirms the watch exists (see WithCreatedNotify).
	Created bool
	// CancelReason is the server's explanation for a cancellation.
	CancelReason string

	closeErr error // why the client ended the watch, when it did
}

// Err says why a canceled watch ended; nil for ordinary responses.
func (r *WatchResponse) Err() error {
	switch {
	case r.closeErr != nil:
		return r.closeErr
	case r.CompactRevision != 0:
		return rpctypes.ErrCompacted
	case r.Canceled:
		if r.CancelReason != "" {
			return rpctypes.Error(status.Error(codes.FailedPrecondition, r.CancelReason))
		}
		return rpctypes.ErrFutureRev
	}
	return nil
}

// IsProgressNotify says the response only reports the current revision.
func (r *WatchResponse) IsProgressNotify() bool {
	return len(r.Events) == 0 && !r.Canceled && !r.Created && r.CompactRevision == 0 && r.Header.GetRevision() != 0
}

// progressWatchID is the watch ID the server puts on progress responses
// to RequestProgress, which are meant for every watch on the stream.
const progressWatchID = -1

// subBuffer is how many responses may wait for a slow reader of one
// watch before the stream stops reading from the server.
const subBuffer = 16

// watcher keeps one gRPC stream per distinct outgoing metadata (which
// carries auth and other per-call settings), shared by every watch made
// with that metadata.
type watcher struct {
	c       *Client
	remote  pb.WatchClient
	mu      sync.Mutex
	streams map[string]*watchStream
}

func newWatcher(c *Client) *watcher {
	return &watcher{c: c, remote: pb.NewWatchClient(c.conn), streams: map[string]*watchStream{}}
}

func streamKey(ctx context.Context) (string, metadata.MD) {
	md, _ := metadata.FromOutgoingContext(ctx)
	return fmt.Sprint(md), md
}

// stream finds or starts the stream for ctx's metadata; nil when the
// client is closed.
func (w *watcher) stream(ctx context.Context, create bool) *watchStream {
	key, md := streamKey(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	if st, ok := w.streams[key]; ok || !create || w.c.ctx.Err() != nil {
		return st
	}
	sctx := w.c.ctx
	if md != nil {
		sctx = metadata.NewOutgoingContext(sctx, md.Copy())
	}
	st := &watchStream{
		w: w, ctx: sctx,
		reqc: make(chan *watchSub), closingc: make(chan *watchSub), progc: make(chan struct{}),
		donec: make(chan struct{}), subs: map[int64]*watchSub{},
	}
	if v := md.Get(rpctypes.MetadataRequireLeaderKey); len(v) > 0 && v[0] == rpctypes.MetadataHasLeader {
		st.requireLeader = true
	}
	w.streams[key] = st
	go st.run()
	return st
}

func (w *watcher) Watch(ctx context.Context, key string, opts ...OpOption) WatchChan {
	op := newOp(opGet, key, "", opts)
	out := make(chan WatchResponse)
	sub := &watchSub{
		ctx: ctx, out: out, recvc: make(chan WatchResponse, subBuffer), id: -1,
		createdNotify: op.createdNotify,
		req: &pb.WatchCreateRequest{
			Key: op.key, RangeEnd: op.end, StartRevision: op.rev,
			ProgressNotify: op.progressNotify, PrevKv: op.prevKV, Fragment: op.fragment,
		},
	}
	if op.filterPut {
		sub.req.Filters = append(sub.req.Filters, pb.WatchCreateRequest_NOPUT)
	}
	if op.filterDelete {
		sub.req.Filters = append(sub.req.Filters, pb.WatchCreateRequest_NODELETE)
	}
	st := w.stream(ctx, true)
	if st == nil {
		close(out)
		return out
	}
	select {
	case st.reqc <- sub:
		go sub.serve(st)
	case <-ctx.Done():
		close(out)
	case <-st.donec:
		close(out)
	}
	return out
}

func (w *watcher) RequestProgress(ctx context.Context) error {
	st := w.stream(ctx, false)
	if st == nil {
		if w.c.ctx.Err() != nil {
			return w.c.ctx.Err()
		}
		return nil // no watch on this stream, so nobody to notify
	}
	select {
	case st.progc <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-st.donec:
		return context.Canceled
	}
}

// watchSub is one watch. Its fields are owned by the stream's run loop,
// except out and ctx, which serve uses.
type watchSub struct {
	ctx           context.Context
	req           *pb.WatchCreateRequest // StartRevision moves on as events are delivered
	createdNotify bool
	out           chan WatchResponse
	recvc         chan WatchResponse // filled by run, drained by serve

	id      int64 // server's ID on the current stream, -1 until created
	frag    *pb.WatchResponse
	created bool // the created response was handed over (or not wanted)
	gone    bool // recvc is closed
}

// serve hands responses to the caller until the watch ends; when ctx
// ends first it tells the stream to cancel the watch on the server.
func (s *watchSub) serve(st *watchStream) {
	defer close(s.out)
	for {
		select {
		case r, ok := <-s.recvc:
			if !ok {
				return
			}
			select {
			case s.out <- r:
				continue
			case <-s.ctx.Done():
			}
		case <-s.ctx.Done():
		}
		select {
		case st.closingc <- s:
		case <-st.donec:
		}
		return
	}
}

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
		if st.requireLeader && errors.Is(rpctypes.Error(err), rpctypes.ErrNoLeader) {
			// The caller asked to hear of this rather than wait on a
			// member cut off from the others, as with clientv3.
			st.w.forget(st)
			st.endAll(rpctypes.ErrNoLeader)
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
		case <-st.progc:
			st.progressOwed = true
			st.sendNext(stream)
		case r := <-respc:
			st.handle(r, stream)
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

// endAll ends every watch with a last, canceled response saying why.
func (st *watchStream) endAll(err error) {
	for _, s := range slices.Concat(st.order, st.queue) {
		st.deliver(s, WatchResponse{Canceled: true, closeErr: err})
		st.finish(s)
	}
}

// forget drops st, so that the next watch with its metadata opens a new
// stream.
func (w *watcher) forget(st *watchStream) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, v := range w.streams {
		if v == st {
			delete(w.streams, k)
		}
	}
}

// WithRequireLeader marks calls and watches made with ctx as wanting a
// member that knows a leader: one that does not refuses them with "no
// leader", and ends such watches, after a few election timeouts without
// a leader, with a canceled response whose Err is rpctypes.ErrNoLeader.
func WithRequireLeader(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader)
}

// closeAll ends every watch when the stream stops for good.
func (st *watchStream) closeAll() {
	for _, s := range slices.Clone(st.order) {
		st.finish(s)
	}
	for _, s := range st.queue {
		st.finish(s)
	}
	st.w.mu.Lock()
	for k, v := range st.w.streams {
		if v == st {
			delete(st.w.streams, k)
		}
	}
	st.w.mu.Unlock()
}
