package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// Responses are the wire types, so callers and printers see every field.
type (
	GetResponse     = pb.RangeResponse
	PutResponse     = pb.PutResponse
	DeleteResponse  = pb.DeleteRangeResponse
	TxnResponse     = pb.TxnResponse
	CompactResponse = pb.CompactionResponse
)

// KV reads and writes keys.
type KV interface {
	// Get reads key, or a range of keys with WithPrefix, WithRange or
	// WithFromKey.
	Get(ctx context.Context, key string, opts ...OpOption) (*GetResponse, error)
	// GetStream reads a range over the RangeStream RPC (etcd 3.7), which
	// sends a large result in chunks; the chunks are merged into one
	// response equal to what Get returns.
	GetStream(ctx context.Context, key string, opts ...OpOption) (*GetResponse, error)
	Put(ctx context.Context, key, val string, opts ...OpOption) (*PutResponse, error)
	Delete(ctx context.Context, key string, opts ...OpOption) (*DeleteResponse, error)
	Compact(ctx context.Context, rev int64, opts ...CompactOption) (*CompactResponse, error)
	// Do runs one Op built by OpGet, OpPut, OpDelete or OpTxn.
	Do(ctx context.Context, op Op) (OpResponse, error)
	// Txn starts a transaction: If(...).Then(...).Else(...).Commit().
	Txn(ctx context.Context) Txn
}

// OpResponse holds the response of whichever kind of Op ran.
type OpResponse struct {
	Get *GetResponse
	Put *PutResponse
	Del *DeleteResponse
	Txn *TxnResponse
}

// CompactOption changes a compaction.
type CompactOption func(*pb.CompactionRequest)

// WithCompactPhysical makes Compact return only once the old revisions
// are gone from the backend.
func WithCompactPhysical() CompactOption { return func(r *pb.CompactionRequest) { r.Physical = true } }

type kv struct{ remote pb.KVClient }

func (k *kv) Get(ctx context.Context, key string, opts ...OpOption) (*GetResponse, error) {
	r, err := k.Do(ctx, OpGet(key, opts...))
	return r.Get, err
}

func (k *kv) Put(ctx context.Context, key, val string, opts ...OpOption) (*PutResponse, error) {
	r, err := k.Do(ctx, OpPut(key, val, opts...))
	return r.Put, err
}

func (k *kv) Delete(ctx context.Context, key string, opts ...OpOption) (*DeleteResponse, error) {
	r, err := k.Do(ctx, OpDelete(key, opts...))
	return r.Del, err
}

func (k *kv) Compact(ctx context.Context, rev int64, opts ...CompactOption) (*CompactResponse, error) {
	req := &pb.CompactionRequest{Revision: rev}
	for _, o := range opts {
		o(req)
	}
	resp, err := k.remote.Compact(ctx, req)
	return resp, toErr(ctx, err)
}

func (k *kv) Do(ctx context.Context, op Op) (OpResponse, error) {
	var (
		out OpResponse
		err error
	)
	switch op.t {
	case opGet:
		out.Get, err = k.remote.Range(ctx, op.rangeRequest())
	case opPut:
		out.Put, err = k.remote.Put(ctx, op.putRequest())
	case opDelete:
		out.Del, err = k.remote.DeleteRange(ctx, op.deleteRequest())
	case opTxn:
		if err := op.checkCompares(); err != nil {
			return OpResponse{}, err
		}
		out.Txn, err = k.remote.Txn(ctx, op.txnRequest())
	default:
		return OpResponse{}, errors.New("client: empty Op")
	}
	if err != nil {
		return OpResponse{}, toErr(ctx, err)
	}
	return out, nil
}

func (k *kv) GetStream(ctx context.Context, key string, opts ...OpOption) (*GetResponse, error) {
	req := OpGet(key, opts...).rangeRequest()
	delay := firstRetryDelay
	for {
		resp, received, err := k.readStream(ctx, req)
		if err == nil {
			return resp, nil
		}
		// A stream broken before its first chunk is as safe to repeat as
		// any read; after that, the caller gets the error.
		if received || !retryable(err) {
			return nil, toErr(ctx, err)
		}
		if !sleepCtx(ctx, delay) {
			return nil, toErr(ctx, err)
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// readStream merges every chunk of one RangeStream call. Each chunk holds
// the next keys; header, count and more come with the last one.
func (k *kv) readStream(ctx context.Context, req *pb.RangeRequest) (resp *GetResponse, received bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := k.remote.RangeStream(ctx, req)
	if err != nil {
		return nil, false, err
	}
	out := &GetResponse{}
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, received, nil
		}
		if err != nil {
			return nil, received, err
		}
		received = true
		if r := chunk.GetRangeResponse(); r != nil {
			proto.Merge(out, r)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (k *kv) Txn(ctx context.Context) Txn { return &txn{ctx: ctx, kv: k} }

// Txn is a transaction under construction. The compares run on the
// server: when all hold, the Then ops run, otherwise the Else ops, all
// atomically at one revision.
type Txn interface {
	If(cs ...Cmp) Txn
	Then(ops ...Op) Txn
	Else(ops ...Op) Txn
	Commit() (*TxnResponse, error)
}

type txn struct {
	ctx context.Context
	kv  *kv
	op  Op
}

func (t *txn) If(cs ...Cmp) Txn   { t.op.cmps = append(t.op.cmps, cs...); return t }
func (t *txn) Then(ops ...Op) Txn { t.op.thenOps = append(t.op.thenOps, ops...); return t }
func (t *txn) Else(ops ...Op) Txn { t.op.elseOps = append(t.op.elseOps, ops...); return t }

func (t *txn) Commit() (*TxnResponse, error) {
	t.op.t = opTxn
	r, err := t.kv.Do(t.ctx, t.op)
	return r.Txn, err
}

// checkCompares reports the first malformed compare in a txn or in any
// txn nested in it.
func (op Op) checkCompares() error {
	for _, c := range op.cmps {
		if err := c.check(); err != nil {
			return err
		}
	}
	for _, sub := range append(append([]Op(nil), op.thenOps...), op.elseOps...) {
		if sub.t == opTxn {
			if err := sub.checkCompares(); err != nil {
				return fmt.Errorf("nested txn: %w", err)
			}
		}
	}
	return nil
}
