package client

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
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
	Get(ctx context.Context, key string, opts ...OpOption) (*GetResponse, error)
	// GetStream reads a large range as a stream of chunks, assembled into
	// one response.
	GetStream(ctx context.Context, key string, opts ...OpOption) (*GetResponse, error)
	Put(ctx context.Context, key, val string, opts ...OpOption) (*PutResponse, error)
	Delete(ctx context.Context, key string, opts ...OpOption) (*DeleteResponse, error)
	Compact(ctx context.Context, rev int64, opts ...CompactOption) (*CompactResponse, error)
	Txn(ctx context.Context) Txn
}

// CompactOption changes a compaction.
type CompactOption func(*pb.CompactionRequest)

// WithCompactPhysical waits until the old revisions are gone from disk.
func WithCompactPhysical() CompactOption { return func(r *pb.CompactionRequest) { r.Physical = true } }

type kv struct{ remote pb.KVClient }

func (k *kv) Get(ctx context.Context, key string, opts ...OpOption) (*GetResponse, error) {
	resp, err := k.remote.Range(ctx, OpGet(key, opts...).rangeRequest())
	return resp, Err(err)
}

func (k *kv) GetStream(ctx context.Context, key string, opts ...OpOption) (*GetResponse, error) {
	stream, err := k.remote.RangeStream(ctx, OpGet(key, opts...).rangeRequest())
	if err != nil {
		return nil, Err(err)
	}
	out := &GetResponse{}
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, Err(err)
		}
		r := chunk.GetRangeResponse()
		out.Kvs = append(out.Kvs, r.GetKvs()...)
		if r.GetHeader() != nil {
			out.Header, out.More, out.Count = r.Header, r.More, r.Count
		}
	}
}

func (k *kv) Put(ctx context.Context, key, val string, opts ...OpOption) (*PutResponse, error) {
	resp, err := k.remote.Put(ctx, OpPut(key, val, opts...).putRequest())
	return resp, Err(err)
}

func (k *kv) Delete(ctx context.Context, key string, opts ...OpOption) (*DeleteResponse, error) {
	resp, err := k.remote.DeleteRange(ctx, OpDelete(key, opts...).deleteRequest())
	return resp, Err(err)
}

func (k *kv) Compact(ctx context.Context, rev int64, opts ...CompactOption) (*CompactResponse, error) {
	r := &pb.CompactionRequest{Revision: rev}
	for _, o := range opts {
		o(r)
	}
	resp, err := k.remote.Compact(ctx, r)
	return resp, Err(err)
}

func (k *kv) Txn(ctx context.Context) Txn { return &txn{ctx: ctx, kv: k} }

// Txn is a transaction under construction: If(...).Then(...).Else(...).Commit().
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
	for _, c := range t.op.cmps {
		if err := c.check(); err != nil {
			return nil, err
		}
	}
	resp, err := t.kv.remote.Txn(t.ctx, t.op.txnRequest())
	return resp, Err(err)
}
