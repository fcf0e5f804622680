package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

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
		if w.c.ctx.Err() == nil {
			// The stream ended as the last of its watches did, and was
			// forgotten first: the next try opens a new one.
			return w.Watch(ctx, key, opts...)
		}
		close(out)
	}
	return out
}

// errStreamIdle ends a stream whose last watch has ended, as clientv3
// does, so that a client does not hold server resources for nothing.
var errStreamIdle = errors.New("no watch left on the stream")

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

// closeAll ends every watch when the stream stops for good, with a last
// canceled response saying why when there is a reason (closeErr). The
// stream is forgotten first: a watch that finds it ending tries again on
// a new one.
func (st *watchStream) closeAll() {
	st.w.forget(st)
	for _, s := range slices.Concat(st.order, st.queue) {
		if st.closeErr != nil {
			st.deliver(s, WatchResponse{Canceled: true, closeErr: st.closeErr})
		}
		st.finish(s)
	}
}
