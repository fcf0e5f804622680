package api

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The checks below reject malformed requests before they reach raft, so a
// bad request costs nothing and changes nothing. They give the same codes
// and messages as etcd, since clients branch on them.

func checkRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

// checkRangeStream adds what a streamed range cannot do: it pages by key,
// so it needs key order and cannot filter by revision.
func checkRangeStream(r *pb.RangeRequest) error {
	if err := checkRange(r); err != nil {
		return err
	}
	keyOrder := r.SortOrder == pb.RangeRequest_NONE ||
		(r.SortTarget == pb.RangeRequest_KEY && r.SortOrder == pb.RangeRequest_ASCEND)
	if !keyOrder {
		return status.Error(codes.Unimplemented, "RangeStream does not support custom sort orders")
	}
	if r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		return status.Error(codes.Unimplemented, "RangeStream does not support revision filters")
	}
	return nil
}

func checkPut(r *pb.PutRequest) error {
	switch {
	case len(r.Key) == 0:
		return rpctypes.ErrGRPCEmptyKey
	case r.IgnoreValue && len(r.Value) != 0:
		return rpctypes.ErrGRPCValueProvided
	case r.IgnoreLease && r.Lease != 0:
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

func checkDelete(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

// checkTxn bounds the widest of compares, success and failure by maxOps,
// and lets nested txns use what their parent left.
func checkTxn(r *pb.TxnRequest, maxOps int) error {
	width := max(len(r.Compare), len(r.Success), len(r.Failure))
	if width > maxOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if err := checkOp(op, maxOps-width); err != nil {
				return err
			}
		}
	}
	if _, err := writtenKeys(r.Success); err != nil {
		return err
	}
	if _, err := writtenKeys(r.Failure); err != nil {
		return err
	}
	return nil
}

func checkOp(op *pb.RequestOp, maxOps int) error {
	switch v := op.Request.(type) {
	case *pb.RequestOp_RequestRange:
		return checkRange(v.RequestRange)
	case *pb.RequestOp_RequestPut:
		return checkPut(v.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return checkDelete(v.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return checkTxn(v.RequestTxn, maxOps)
	}
	// An op with no request is what etcd answers this way.
	return rpctypes.ErrGRPCKeyNotFound
}

// written collects what one list of txn ops writes, to refuse a txn that
// writes the same key twice in one branch: the result would depend on op
// order, which etcd defines as an error rather than a rule.
type written struct {
	puts map[string]struct{}
	dels []keyRange
}

type keyRange struct{ key, end []byte }

// covers follows etcd's interval check: a range end is an exclusive upper
// bound compared as bytes, so a from-key delete ("\x00" end) covers nothing.
func (w *written) covers(k string) bool {
	for _, d := range w.dels {
		if len(d.end) == 0 {
			if string(d.key) == k {
				return true
			}
			continue
		}
		if string(d.key) <= k && k < string(d.end) {
			return true
		}
	}
	return false
}

func (w *written) addPut(k string) error {
	if _, dup := w.puts[k]; dup || w.covers(k) {
		return rpctypes.ErrGRPCDuplicateKey
	}
	w.puts[k] = struct{}{}
	return nil
}

func writtenKeys(ops []*pb.RequestOp) (*written, error) {
	w := &written{puts: map[string]struct{}{}}
	for _, op := range ops {
		if d := op.GetRequestDeleteRange(); d != nil {
			w.dels = append(w.dels, keyRange{d.Key, d.RangeEnd})
		}
	}
	for _, op := range ops {
		t := op.GetRequestTxn()
		if t == nil {
			continue
		}
		then, err := writtenKeys(t.Success)
		if err != nil {
			return nil, err
		}
		els, err := writtenKeys(t.Failure)
		if err != nil {
			return nil, err
		}
		for k := range then.puts {
			if err := w.addPut(k); err != nil {
				return nil, err
			}
		}
		for k := range els.puts {
			// Only one branch of the nested txn runs, so a key both
			// branches put is no conflict with itself.
			if _, inThen := then.puts[k]; inThen {
				if w.covers(k) {
					return nil, rpctypes.ErrGRPCDuplicateKey
				}
				continue
			}
			if err := w.addPut(k); err != nil {
				return nil, err
			}
		}
		w.dels = append(w.dels, then.dels...)
		w.dels = append(w.dels, els.dels...)
	}
	for _, op := range ops {
		if p := op.GetRequestPut(); p != nil {
			if err := w.addPut(string(p.Key)); err != nil {
				return nil, err
			}
		}
	}
	return w, nil
}
