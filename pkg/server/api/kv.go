// Package api serves the etcd v3 gRPC API (KV, Watch, Lease, Maintenance,
// Cluster) and the plain HTTP endpoints (/version, /health) on a member's
// client URLs.
//
// Handlers validate requests at the boundary, call the server through small
// interfaces declared here, and fill response headers, so every error a
// client sees carries etcd's gRPC code and message.
package api

import (
	"context"
	"errors"
	"math"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// KV is what the KV service needs from a member.
type KV interface {
	// Put, DeleteRange, Txn and Compact go through raft.
	Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error)
	DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error)
	Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error)
	Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error)
	// ReadBarrier returns once local state holds every write committed
	// before the call: the wait a linearizable read needs.
	ReadBarrier(ctx context.Context) error
	// LocalRange serves r from local state with no barrier.
	LocalRange(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
	// LocalTxn serves a txn that only reads from local state.
	LocalTxn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error)
}

// Header tells handlers what to put in response headers.
type Header interface {
	ClusterID() uint64
	MemberID() uint64
	Term() uint64
	Rev() int64
}

type kvService struct {
	pb.UnimplementedKVServer
	kv        KV
	hdr       Header
	maxTxnOps int
	// chunkBytes is the size a RangeStream chunk aims for.
	chunkBytes int
}

func fillHeader(h Header, rh *pb.ResponseHeader, withRev bool) {
	rh.ClusterId = h.ClusterID()
	rh.MemberId = h.MemberID()
	rh.RaftTerm = h.Term()
	if withRev && rh.Revision == 0 {
		rh.Revision = h.Rev()
	}
}

func (s *kvService) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	if !r.Serializable {
		if err := s.kv.ReadBarrier(ctx); err != nil {
			return nil, toStatus(err)
		}
	}
	if raw, ok := s.kv.(RawRanger); ok && rawCovers(r) {
		return s.rangeRaw(ctx, raw, r)
	}
	resp, err := s.kv.LocalRange(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

func (s *kvService) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPut(r); err != nil {
		return nil, err
	}
	resp, err := s.kv.Put(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

func (s *kvService) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDelete(r); err != nil {
		return nil, err
	}
	resp, err := s.kv.DeleteRange(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

func (s *kvService) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxn(r, s.maxTxnOps); err != nil {
		return nil, err
	}
	var (
		resp *pb.TxnResponse
		err  error
	)
	if readOnly(r) {
		// A txn that writes nothing need not be replicated: a read
		// barrier gives it the same linearizability a proposal would.
		if err = s.kv.ReadBarrier(ctx); err == nil {
			resp, err = s.kv.LocalTxn(ctx, r)
		}
	} else {
		resp, err = s.kv.Txn(ctx, r)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

func readOnly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			switch v := op.Request.(type) {
			case *pb.RequestOp_RequestRange:
			case *pb.RequestOp_RequestTxn:
				if !readOnly(v.RequestTxn) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

func (s *kvService) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := s.kv.Compact(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

// firstChunk is how many keys the first RangeStream chunk carries; later
// chunks grow or shrink toward chunkBytes.
const firstChunk = 10

// RangeStream sends a large range in chunks, so neither side holds the
// whole result in one message. Every chunk is read at the revision the
// first one saw, so the stream is one consistent view.
func (s *kvService) RangeStream(r *pb.RangeRequest, stream pb.KV_RangeStreamServer) error {
	if err := checkRangeStream(r); err != nil {
		return err
	}
	ctx := stream.Context()
	if !r.Serializable {
		if err := s.kv.ReadBarrier(ctx); err != nil {
			return toStatus(err)
		}
	}
	req := proto.Clone(r).(*pb.RangeRequest)
	if req.CountOnly {
		resp, err := s.kv.LocalRange(ctx, req)
		if err != nil {
			return toStatus(err)
		}
		out := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: resp.Header.Revision}, Count: resp.Count}
		return s.sendChunk(stream, out)
	}
	if raw, ok := s.kv.(RawRanger); ok && rawCovers(req) {
		return s.streamRaw(ctx, raw, req, stream)
	}
	return s.streamChunks(ctx, req, stream)
}

func (s *kvService) streamChunks(ctx context.Context, req *pb.RangeRequest, stream pb.KV_RangeStreamServer) error {
	plan := newChunkPlan(req)
	for {
		resp, err := s.kv.LocalRange(ctx, req)
		if err != nil {
			return toStatus(err)
		}
		plan.pin(req, resp.Header.Revision)
		var next []byte
		if resp.More && len(resp.Kvs) > 0 {
			next = keyAfter(resp.Kvs[len(resp.Kvs)-1].Key)
		}
		out := &pb.RangeResponse{Kvs: resp.Kvs}
		done := plan.add(len(resp.Kvs), resp.More, next)
		if done {
			out.Header = &pb.ResponseHeader{Revision: plan.rev}
			out.More = resp.More
			out.Count = plan.sent
			if resp.More && next != nil {
				rest, err := s.kv.LocalRange(ctx, &pb.RangeRequest{Key: next, RangeEnd: req.RangeEnd, Revision: req.Revision, CountOnly: true, Serializable: true})
				if err != nil {
					return toStatus(err)
				}
				out.Count += rest.Count
			}
		}
		if err := s.sendChunk(stream, out); err != nil {
			return err
		}
		if done {
			return nil
		}
		plan.advance(req, next, proto.Size(resp), s.chunkBytes)
	}
}

// chunkPlan is the paging both RangeStream paths share: at most total keys
// in all, sent so far, every chunk read at the first chunk's revision.
type chunkPlan struct{ total, sent, rev int64 }

// newChunkPlan starts paging req, whose Limit (0: none) becomes the
// plan's total and is set to the first chunk's size.
func newChunkPlan(req *pb.RangeRequest) *chunkPlan {
	total := req.Limit
	if total == 0 {
		total = math.MaxInt64
	}
	req.Limit = min(firstChunk, total)
	return &chunkPlan{total: total}
}

// pin records rev, the revision a chunk was read at, if it is the first,
// and makes the later chunks of req read at it.
func (p *chunkPlan) pin(req *pb.RangeRequest, rev int64) {
	if p.rev == 0 {
		p.rev = rev
	}
	if req.Revision == 0 {
		req.Revision = p.rev
	}
}

// add counts a chunk of n keys as sent and says whether it is the last:
// the store had no more, the client's total is reached, or there is no
// key to go on from (next nil).
func (p *chunkPlan) add(n int, more bool, next []byte) bool {
	p.sent += int64(n)
	return !more || p.sent >= p.total || next == nil
}

// advance points req at the chunk starting at next, sized after the
// last chunk's size in bytes.
func (p *chunkPlan) advance(req *pb.RangeRequest, next []byte, size, chunkBytes int) {
	req.Key = next
	req.Limit = min(nextChunk(req.Limit, size, chunkBytes), p.total-p.sent)
}

// keyAfter is the first key after k.
func keyAfter(k []byte) []byte {
	return append(append(make([]byte, 0, len(k)+1), k...), 0)
}

func (s *kvService) sendChunk(stream pb.KV_RangeStreamServer, out *pb.RangeResponse) error {
	if out.Header != nil {
		fillHeader(s.hdr, out.Header, false)
	}
	return stream.Send(&pb.RangeStreamResponse{RangeResponse: out})
}

// nextChunk doubles or halves the key count when the last chunk was far
// from the target size, and leaves it alone near it to avoid see-sawing.
func nextChunk(limit int64, size, target int) int64 {
	switch {
	case size < target/2:
		limit *= 2
	case size > target*2:
		limit /= 2
	}
	return max(limit, 1)
}

// toStatus turns an error from the server into the gRPC status a client
// sees. Server errors are already etcd's statuses; context errors become
// the matching codes.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return rpctypes.ErrGRPCTimeout
	}
	return status.Error(codes.Unknown, err.Error())
}
