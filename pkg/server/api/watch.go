package api

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// Watcher is what the Watch service needs from a member.
type Watcher interface {
	// NewWatchStream serves one client stream, whose ctx says who it
	// comes from.
	NewWatchStream(ctx context.Context) WatchStream
}

// WatchStream multiplexes the watchers of one client stream. Responses
// come out of Chan in the order the client must see them, with only the
// header's revision filled.
type WatchStream interface {
	Watch(r *pb.WatchCreateRequest) (int64, error)
	Cancel(id int64) bool
	RequestProgress()
	NotifyProgress()
	Chan() <-chan *pb.WatchResponse
	Close()
}

type watchService struct {
	pb.UnimplementedWatchServer
	w        Watcher
	hdr      Header
	progress time.Duration
	maxBytes int
}

// Watch serves one client stream: a reader takes create, cancel and
// progress requests, and this goroutine alone sends, so responses keep the
// order the watch stream gives them.
func (s *watchService) Watch(stream pb.Watch_WatchServer) error {
	ws := s.w.NewWatchStream(stream.Context())
	defer ws.Close()
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	out := &watchSender{svc: s, stream: stream, fragments: map[int64]bool{}}
	errc := make(chan error, 1)
	go func() {
		err := out.receive(ws)
		if errors.Is(err, io.EOF) {
			// The client is done sending (the HTTP gateway is, once it
			// has passed a request body on), not done listening: as in
			// etcd, its watchers live on until it goes away.
			return
		}
		errc <- err
		cancel()
	}()
	tick := time.NewTicker(s.progress)
	defer tick.Stop()
	for {
		select {
		case r := <-ws.Chan():
			if err := out.send(r); err != nil {
				return err
			}
		case <-tick.C:
			ws.NotifyProgress()
		case <-ctx.Done():
			select {
			case err := <-errc:
				return err
			default:
				return ctx.Err()
			}
		}
	}
}

// watchSender sends on one client stream; the request reader and the
// response loop share it, and gRPC allows one sender at a time.
type watchSender struct {
	svc    *watchService
	stream pb.Watch_WatchServer

	mu        sync.Mutex
	fragments map[int64]bool // watchers that accept fragmented responses
}

// receive handles the client's requests until the stream ends; io.EOF
// says the client closed its side.
func (o *watchSender) receive(ws WatchStream) error {
	for {
		req, err := o.stream.Recv()
		if errors.Is(err, io.EOF) {
			return err
		}
		if err != nil {
			return nil
		}
		switch {
		case req.GetCreateRequest() != nil:
			cr := req.GetCreateRequest()
			id, err := ws.Watch(cr)
			if err != nil {
				// etcd answers a refused watch on the stream itself, a
				// forbidden one with no watch ID.
				refused := &pb.WatchResponse{WatchId: cr.WatchId, Created: true, Canceled: true, CancelReason: err.Error()}
				if refusedByAuth(err) {
					refused.WatchId = -1
				}
				if err := o.send(refused); err != nil {
					return err
				}
				continue
			}
			o.mu.Lock()
			o.fragments[id] = cr.Fragment
			o.mu.Unlock()
		case req.GetCancelRequest() != nil:
			id := req.GetCancelRequest().WatchId
			if ws.Cancel(id) {
				if err := o.send(&pb.WatchResponse{WatchId: id, Canceled: true}); err != nil {
					return err
				}
			}
		case req.GetProgressRequest() != nil:
			ws.RequestProgress()
		}
	}
}

// send fills r's header and sends it, in fragments when the watcher
// allows them and r is larger than a request may be.
func (o *watchSender) send(r *pb.WatchResponse) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.Header == nil {
		r.Header = &pb.ResponseHeader{}
	}
	// etcd leaves the revision out of a compaction cancel's header.
	fillHeader(o.svc.hdr, r.Header, r.CompactRevision == 0)
	if !o.fragments[r.WatchId] || len(r.Events) < 2 || proto.Size(r) <= o.svc.maxBytes {
		return o.stream.Send(r)
	}
	for _, part := range fragmentsOf(r, o.svc.maxBytes) {
		if err := o.stream.Send(part); err != nil {
			return err
		}
	}
	return nil
}

// fragmentsOf splits r's events into responses of at most max bytes of
// events each, all but the last marked as fragments.
func fragmentsOf(r *pb.WatchResponse, max int) []*pb.WatchResponse {
	var parts []*pb.WatchResponse
	cur := &pb.WatchResponse{Header: r.Header, WatchId: r.WatchId, Fragment: true}
	size := 0
	for _, ev := range r.Events {
		n := proto.Size(ev)
		if len(cur.Events) > 0 && size+n > max {
			parts = append(parts, cur)
			cur = &pb.WatchResponse{Header: r.Header, WatchId: r.WatchId, Fragment: true}
			size = 0
		}
		cur.Events = append(cur.Events, ev)
		size += n
	}
	cur.Fragment = false
	return append(parts, cur)
}

// refusedByAuth says whether a watch was refused for who asked for it,
// which etcd answers with no watch ID.
func refusedByAuth(err error) bool {
	for _, e := range []error{rpctypes.ErrGRPCPermissionDenied, rpctypes.ErrGRPCInvalidAuthToken, rpctypes.ErrGRPCAuthOldRevision, rpctypes.ErrGRPCUserEmpty} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
