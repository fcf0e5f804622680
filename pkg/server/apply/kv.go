package apply

import (
	"bytes"
	"cmp"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/lease"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

func hdr(rev int64) *pb.ResponseHeader { return &pb.ResponseHeader{Revision: rev} }

// rangeKeys implements RangeRequest on any consistent view.
func rangeKeys(rd mvcc.Reader, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	limit := r.Limit
	filtered := r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	if r.SortOrder != pb.RangeRequest_NONE || filtered {
		// Sorting and filtering need every key before the limit applies.
		limit = 0
	}
	if limit > 0 {
		limit++ // one more than asked tells whether there are more
	}
	rr, err := rd.Range(r.Key, r.RangeEnd, mvcc.RangeOptions{Limit: limit, Rev: r.Revision, Count: r.CountOnly})
	if err != nil {
		return nil, err
	}
	kvs := rr.KVs
	if filtered {
		kvs = slices.DeleteFunc(kvs, func(kv *mvccpb.KeyValue) bool {
			return (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
				(r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
				(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) ||
				(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision)
		})
	}
	sortKVs(kvs, r.SortTarget, r.SortOrder)
	resp := &pb.RangeResponse{Header: hdr(rr.Rev), Count: rr.Count}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	if r.KeysOnly {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

// sortKVs orders kvs as etcd does: results come in key order, and a sort
// target other than KEY with no order given means ascending.
func sortKVs(kvs []*mvccpb.KeyValue, target pb.RangeRequest_SortTarget, order pb.RangeRequest_SortOrder) {
	if order == pb.RangeRequest_NONE && target != pb.RangeRequest_KEY {
		order = pb.RangeRequest_ASCEND
	}
	if order == pb.RangeRequest_NONE {
		return
	}
	by := func(a, b *mvccpb.KeyValue) int {
		switch target {
		case pb.RangeRequest_VERSION:
			return cmp.Compare(a.Version, b.Version)
		case pb.RangeRequest_CREATE:
			return cmp.Compare(a.CreateRevision, b.CreateRevision)
		case pb.RangeRequest_MOD:
			return cmp.Compare(a.ModRevision, b.ModRevision)
		case pb.RangeRequest_VALUE:
			return bytes.Compare(a.Value, b.Value)
		}
		return bytes.Compare(a.Key, b.Key)
	}
	if order == pb.RangeRequest_DESCEND {
		slices.SortStableFunc(kvs, func(a, b *mvccpb.KeyValue) int { return by(b, a) })
		return
	}
	slices.SortStableFunc(kvs, by)
}

// writer applies writes to the store's write txn and keeps the lessor's
// record of which key belongs to which lease in step with them.
type writer struct {
	t      *mvcc.TxnWrite
	leases *lease.Lessor
}

// checkPut refuses a put that cannot apply: ignore_value or ignore_lease of
// a missing key, or a lease that does not exist.
func (w writer) checkPut(r *pb.PutRequest) error {
	if r.IgnoreValue || r.IgnoreLease {
		rr, err := w.t.Range(r.Key, nil, mvcc.RangeOptions{})
		if err != nil {
			return err
		}
		if len(rr.KVs) == 0 {
			return rpctypes.ErrGRPCKeyNotFound
		}
	}
	if r.Lease != 0 && !w.leases.Exists(r.Lease) {
		return rpctypes.ErrGRPCLeaseNotFound
	}
	return nil
}

func (w writer) put(r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := w.checkPut(r); err != nil {
		return nil, err
	}
	var prev *mvccpb.KeyValue
	if r.PrevKv || r.IgnoreValue || r.IgnoreLease {
		rr, err := w.t.Range(r.Key, nil, mvcc.RangeOptions{})
		if err != nil {
			return nil, err
		}
		if len(rr.KVs) == 1 {
			prev = rr.KVs[0]
		}
	}
	val, id := r.Value, r.Lease
	if r.IgnoreValue {
		val = prev.Value
	}
	if r.IgnoreLease {
		id = prev.Lease
	}
	resp := &pb.PutResponse{Header: hdr(w.t.Put(r.Key, val, id))}
	w.leases.Attach(r.Key, id)
	if r.PrevKv {
		resp.PrevKv = prev
	}
	return resp, nil
}

func (w writer) deleteRange(r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	prev := w.t.DeleteRange(r.Key, r.RangeEnd)
	for _, kv := range prev {
		if kv.Lease != 0 {
			w.leases.Attach(kv.Key, lease.None)
		}
	}
	resp := &pb.DeleteRangeResponse{Header: hdr(w.t.Rev()), Deleted: int64(len(prev))}
	if r.PrevKv {
		resp.PrevKvs = prev
	}
	return resp, nil
}

func compact(t *mvcc.TxnWrite, r *pb.CompactionRequest) (*pb.CompactionResponse, <-chan struct{}, error) {
	done, err := t.Compact(r.Revision)
	if err != nil {
		return nil, nil, err
	}
	return &pb.CompactionResponse{Header: hdr(t.Rev())}, done, nil
}
