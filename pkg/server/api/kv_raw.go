package api

import (
	"context"
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// RawRanger is what a member offers, beside KV, to answer plain ranges from
// the records as stored (see rangeenc.go) rather than from decoded ones.
type RawRanger interface {
	// LocalRangeRaw reads r.Key to r.RangeEnd at r.Revision (0: the
	// current one) from local state with no barrier, within lim, in key
	// order, and calls fn with the revision read at, the number of keys
	// in range before the limit and the stored records (marshalled
	// mvccpb.KeyValues). fn runs under the store's read lock; vals are
	// valid only until it returns. The caller's right to read the range
	// is checked first.
	LocalRangeRaw(ctx context.Context, r *pb.RangeRequest, lim RawLimit, fn func(rev, count int64, vals [][]byte) error) error
}

// RawLimit bounds a raw read.
type RawLimit struct {
	Keys int64 // at most this many records are handed over; 0: all
	// Paged counts the keys in range only up to Keys, which tells whether
	// there are more and is all a page of a stream needs: each page then
	// costs its own size, not a walk over the rest of the range.
	Paged bool
}

// rawCovers tells whether a range's answer is its keys in key order, cut at
// the limit: what the raw path writes. Other sorts and the revision
// filters take the decoding path, and so does count_only, whose answer
// holds no keys.
func rawCovers(r *pb.RangeRequest) bool {
	keyOrder := (r.SortOrder == pb.RangeRequest_NONE && r.SortTarget == pb.RangeRequest_KEY) ||
		(r.SortOrder == pb.RangeRequest_ASCEND && r.SortTarget == pb.RangeRequest_KEY)
	filtered := r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	return keyOrder && !filtered && !r.CountOnly
}

// storeLimit is how many keys to read for a range asking for limit: one
// more tells whether there are more.
func storeLimit(limit int64) int64 {
	if limit > 0 {
		return limit + 1
	}
	return 0
}

// headerNow is a response header with what the member says now, without
// the revision (the read gives that). It is taken before a read, not
// inside it, so that no member lock is taken under the store's.
func (s *kvService) headerNow() *pb.ResponseHeader {
	h := &pb.ResponseHeader{}
	fillHeader(s.hdr, h, false)
	return h
}

// errOverBudget stops a read whose answer does not fit the budget now.
var errOverBudget = errors.New("answer over budget")

// rangeRaw answers a range with its bytes encoded as the read goes, the only
// copy of the answer the server holds (see passThroughCodec). An answer
// the budget has no room for is measured first, and read again at the
// same revision once the budget has it; its header gives the revision of
// the first read, when the answer was current.
func (s *kvService) rangeRaw(ctx context.Context, raw RawRanger, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	var (
		b, buf  []byte // the answer; the budget's buffer for it
		t       *budgetTicket
		holding bool  // t is this answer's, nil if it goes over budget
		need    int   // the size the budget had no room for
		hdrRev  int64 // the header's revision, once pinned
	)
	hdr := s.headerNow()
	encode := func(rev, count int64, vals [][]byte) error {
		hdr.Revision = rev
		if hdrRev != 0 {
			hdr.Revision = hdrRev
		}
		a := rangeAnswer{hdr: hdr, vals: vals, keysOnly: r.KeysOnly, count: count}
		if r.Limit > 0 && int64(len(vals)) > r.Limit {
			a.vals, a.more = vals[:r.Limit], true
		}
		n, err := a.size()
		if err != nil {
			return err
		}
		if !holding {
			if t, buf, holding = largeAnswers.tryTake(n); !holding {
				need, hdrRev = n, rev
				return errOverBudget
			}
		}
		if t == nil || cap(buf) < n {
			// Not counted, or grown since it was measured (it was
			// read again at a new revision): over budget.
			t.release()
			t = nil
			b, err = a.appendTo(make([]byte, 0, n))
			return err
		}
		b, err = a.appendTo(buf[:0])
		return err
	}
	err := raw.LocalRangeRaw(ctx, r, RawLimit{Keys: storeLimit(r.Limit)}, encode)
	if errors.Is(err, errOverBudget) {
		if t, buf, err = largeAnswers.take(ctx, need); err != nil {
			return nil, toStatus(err)
		}
		holding = true
		pinned := proto.Clone(r).(*pb.RangeRequest)
		if pinned.Revision == 0 {
			pinned.Revision = hdrRev
		}
		err = raw.LocalRangeRaw(ctx, pinned, RawLimit{Keys: storeLimit(r.Limit)}, encode)
		if errors.Is(err, rpctypes.ErrGRPCCompacted) && r.Revision == 0 {
			// Compacted past the first read while waiting: read what
			// is current now instead.
			hdrRev = 0
			err = raw.LocalRangeRaw(ctx, r, RawLimit{Keys: storeLimit(r.Limit)}, encode)
		}
	}
	if err != nil {
		t.release()
		return nil, toStatus(err)
	}
	holdBudget(b, t)
	return preEncoded(&pb.RangeResponse{}, b), nil
}

// streamRaw is streamChunks on the raw path: the same chunks, each encoded
// once, straight from the stored records.
func (s *kvService) streamRaw(ctx context.Context, raw RawRanger, req *pb.RangeRequest, stream pb.KV_RangeStreamServer) error {
	plan := newChunkPlan(req)
	spares := newChunkSpares()
	for {
		var (
			msg, next []byte
			done      bool
			size      int
		)
		hdr := s.headerNow()
		// Only a chunk that may end the stream at the client's limit
		// needs the count of the keys after it.
		lim := RawLimit{Keys: storeLimit(req.Limit), Paged: req.Limit < plan.total-plan.sent}
		err := raw.LocalRangeRaw(ctx, req, lim, func(cur, count int64, vals [][]byte) error {
			if plan.rev == 0 {
				plan.rev = cur
			}
			more := false
			if req.Limit > 0 && int64(len(vals)) > req.Limit {
				vals, more = vals[:req.Limit], true
			}
			// The decoding path sizes chunks by the store's answer,
			// header and count included: so does this one.
			var err error
			size, err = (&rangeAnswer{hdr: &pb.ResponseHeader{Revision: cur}, vals: vals, keysOnly: req.KeysOnly, more: more, count: count}).size()
			if err != nil {
				return err
			}
			if more && len(vals) > 0 {
				last, err := keyOf(vals[len(vals)-1])
				if err != nil {
					return err
				}
				next = keyAfter(last)
			}
			out := rangeAnswer{vals: vals, keysOnly: req.KeysOnly}
			done = plan.add(len(vals), more, next)
			if done {
				hdr.Revision = plan.rev
				out.hdr, out.more, out.count = hdr, more, plan.sent
				if more && next != nil {
					// The keys after this chunk, read at the same
					// revision: the ones in range not sent.
					out.count += count - int64(len(vals))
				}
			}
			msg, err = out.encodeStream(spares)
			return err
		})
		if err != nil {
			return toStatus(err)
		}
		plan.pin(req, plan.rev)
		lend(msg, spares, nil)
		if err := stream.Send(preEncoded(&pb.RangeStreamResponse{}, msg)); err != nil {
			return err
		}
		if done {
			return nil
		}
		plan.advance(req, next, size, s.chunkBytes)
	}
}
