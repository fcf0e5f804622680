package server

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/auth"
)

var (
	errStopped  = rpctypes.ErrGRPCStopped
	errInternal = status.Error(codes.Internal, "kvd: unexpected apply result")
)

// idGen makes request IDs unique across members and restarts: the top 16
// bits come from the member ID, the next 40 from the start time in
// milliseconds, and the low 8 count, carrying into the time bits, which
// stay ahead of the clock as long as a member makes fewer than 256
// requests a millisecond on average.
type idGen struct {
	prefix uint64
	next   atomic.Uint64
}

func (g *idGen) init(memberID uint64) {
	g.prefix = (memberID & 0xffff) << 48
	ms := uint64(time.Now().UnixMilli()) & (1<<40 - 1)
	g.next.Store(ms << 8)
}

func (g *idGen) id() uint64 {
	return g.prefix | (g.next.Add(1) & (1<<48 - 1))
}

// waitRegistry hands apply results to the calls that proposed them. For
// a request proposed here it also keeps the request as decoded and its
// encoding, so that applying the entry on this member need not decode
// again what the caller already had.
type waitRegistry struct {
	mu sync.Mutex
	m  map[uint64]*waiter
}

type waiter struct {
	ch   chan *apply.Result
	req  *pb.InternalRaftRequest
	data []byte
}

// register waits for the result of id, a proposal apply only triggers.
func (w *waitRegistry) register(id uint64) chan *apply.Result {
	return w.registerRequest(id, nil, nil)
}

// registerRequest waits for the result of id, proposed as data, the
// encoding of req. From here on nobody may change req: the apply loop may
// read it in place of data.
func (w *waitRegistry) registerRequest(id uint64, req *pb.InternalRaftRequest, data []byte) chan *apply.Result {
	wt := &waiter{ch: make(chan *apply.Result, 1), req: req, data: data}
	w.mu.Lock()
	if w.m == nil {
		w.m = map[uint64]*waiter{}
	}
	w.m[id] = wt
	w.mu.Unlock()
	return wt.ch
}

// request returns the registered request that data, an entry carrying
// request id, encodes, or nil when there is none. Comparing the bytes,
// not just the ID, makes sure the entry is the one proposed here: an ID of
// another member's could collide with one of ours.
func (w *waitRegistry) request(id uint64, data []byte) *pb.InternalRaftRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt, ok := w.m[id]
	if !ok || wt.req == nil || !bytes.Equal(wt.data, data) {
		return nil
	}
	return wt.req
}

func (w *waitRegistry) trigger(id uint64, res *apply.Result) {
	w.mu.Lock()
	wt, ok := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ok {
		wt.ch <- res
	}
}

func (w *waitRegistry) cancel(id uint64) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

// len counts the proposals waiting for their results.
func (w *waitRegistry) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}

func (w *waitRegistry) failAll(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, wt := range w.m {
		wt.ch <- &apply.Result{Err: err}
		delete(w.m, id)
	}
}

// requestTimeout bounds how long a proposal may wait to commit and apply,
// as etcd does: a base plus two election timeouts for a leader change.
func (s *Server) requestTimeout() time.Duration {
	return 5*time.Second + 2*s.cfg.ElectionTimeout
}

// propose replicates r through raft and waits until this member applied
// it, returning the applier's result. r is the caller's no more: the apply
// loop may read it until the entry applies, after propose returned, so
// neither the caller nor anyone else may change it (a retry builds a new
// one).
func (s *Server) propose(ctx context.Context, r *pb.InternalRaftRequest) (*apply.Result, error) {
	id := s.ids.id()
	// The user the request comes from, and the auth revision its
	// permissions were read at, are checked again as the entry applies.
	info := auth.InfoFrom(ctx)
	r.Header = &pb.RequestHeader{ID: id, Username: info.User, AuthRevision: info.Revision}
	data, err := proto.Marshal(r)
	if err != nil {
		return nil, err
	}
	if len(data) > int(s.cfg.MaxRequestBytes) {
		return nil, rpctypes.ErrGRPCRequestTooLarge
	}
	ch := s.waits.registerRequest(id, r, data)
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	p, err := s.batch.submit(ctx, data)
	if err != nil {
		s.waits.cancel(id)
		s.metrics.ProposalFailed()
		return nil, s.proposeError(ctx, err)
	}
	var failed <-chan error
	if p != nil {
		failed = p.errc
	}
	select {
	case res := <-ch:
		return res, nil
	case err := <-failed:
		// Raft refused the batch this request queued for.
		s.waits.cancel(id)
		s.metrics.ProposalFailed()
		return nil, s.proposeError(ctx, err)
	case <-ctx.Done():
		// The entry may still commit later; like etcd, the caller only
		// learns that it did not see the outcome in time.
		s.batch.withdraw(p)
		s.waits.cancel(id)
		s.metrics.ProposalFailed()
		return nil, s.proposeError(ctx, ctx.Err())
	case <-s.stopc:
		return nil, errStopped
	}
}

func (s *Server) proposeError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() == context.Canceled:
		return rpctypes.ErrGRPCCanceled
	case s.node.Leader() == 0:
		return rpctypes.ErrGRPCNoLeader
	case errors.Is(err, context.DeadlineExceeded):
		return rpctypes.ErrGRPCTimeout
	}
	return err
}

// proposeKV is propose for the KV requests, whose results carry a typed
// response or an etcd error.
func proposeKV[T proto.Message](ctx context.Context, s *Server, r *pb.InternalRaftRequest) (T, error) {
	var zero T
	if s.isLearner() {
		return zero, rpctypes.ErrGRPCNotSupportedForLearner
	}
	res, err := s.propose(ctx, r)
	if err != nil {
		return zero, err
	}
	if res.Err != nil {
		return zero, res.Err
	}
	resp, ok := res.Resp.(T)
	if !ok {
		return zero, errInternal
	}
	return resp, nil
}
