package apply

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// txn evaluates the compares, checks that the chosen branch can apply in
// full, then runs it: a txn either applies every op or changes nothing.
func (w writer) txn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	ok, err := compareAll(w.t, r.Compare)
	if err != nil {
		return nil, err
	}
	ops := branch(r, ok)
	if err := w.checkOps(ops); err != nil {
		return nil, err
	}
	resp := &pb.TxnResponse{Succeeded: ok, Responses: make([]*pb.ResponseOp, 0, len(ops))}
	for _, op := range ops {
		ro, err := w.applyOp(op)
		if err != nil {
			return nil, err
		}
		resp.Responses = append(resp.Responses, ro)
	}
	resp.Header = hdr(w.t.Rev())
	return resp, nil
}

func branch(r *pb.TxnRequest, ok bool) []*pb.RequestOp {
	if ok {
		return r.Success
	}
	return r.Failure
}

// checkOps looks ahead through the ops (and the branches nested txns will
// take) for a put that would fail.
func (w writer) checkOps(ops []*pb.RequestOp) error {
	for _, op := range ops {
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestPut:
			if err := w.checkPut(v.RequestPut); err != nil {
				return err
			}
		case *pb.RequestOp_RequestTxn:
			ok, err := compareAll(w.t, v.RequestTxn.Compare)
			if err != nil {
				return err
			}
			if err := w.checkOps(branch(v.RequestTxn, ok)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w writer) applyOp(op *pb.RequestOp) (*pb.ResponseOp, error) {
	switch v := op.Request.(type) {
	case *pb.RequestOp_RequestRange:
		resp, err := rangeKeys(w.t, v.RequestRange)
		if err != nil {
			return nil, err
		}
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: resp}}, nil
	case *pb.RequestOp_RequestPut:
		resp, err := w.put(v.RequestPut)
		if err != nil {
			return nil, err
		}
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: resp}}, nil
	case *pb.RequestOp_RequestDeleteRange:
		resp, err := w.deleteRange(v.RequestDeleteRange)
		if err != nil {
			return nil, err
		}
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: resp}}, nil
	case *pb.RequestOp_RequestTxn:
		resp, err := w.txn(v.RequestTxn)
		if err != nil {
			return nil, err
		}
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: resp}}, nil
	}
	return &pb.ResponseOp{}, nil
}

// readTxn runs a txn whose branches only read.
func readTxn(rd mvcc.Reader, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	ok, err := compareAll(rd, r.Compare)
	if err != nil {
		return nil, err
	}
	ops := branch(r, ok)
	resp := &pb.TxnResponse{Succeeded: ok, Responses: make([]*pb.ResponseOp, 0, len(ops))}
	for _, op := range ops {
		var ro *pb.ResponseOp
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			rr, err := rangeKeys(rd, v.RequestRange)
			if err != nil {
				return nil, err
			}
			ro = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rr}}
		case *pb.RequestOp_RequestTxn:
			tr, err := readTxn(rd, v.RequestTxn)
			if err != nil {
				return nil, err
			}
			ro = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: tr}}
		default:
			ro = &pb.ResponseOp{}
		}
		resp.Responses = append(resp.Responses, ro)
	}
	resp.Header = hdr(rd.Rev())
	return resp, nil
}

func compareAll(rd mvcc.Reader, cs []*pb.Compare) (bool, error) {
	for _, c := range cs {
		ok, err := compare(rd, c)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// compare holds when every key in the compare's range satisfies it. A
// missing key compares as zero version, revisions and lease, and fails
// any value compare.
func compare(rd mvcc.Reader, c *pb.Compare) (bool, error) {
	rr, err := rd.Range(c.Key, c.RangeEnd, mvcc.RangeOptions{})
	if err != nil {
		return false, err
	}
	if len(rr.KVs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false, nil
		}
		return compareKV(c, &mvccpb.KeyValue{}), nil
	}
	for _, kv := range rr.KVs {
		if !compareKV(c, kv) {
			return false, nil
		}
	}
	return true, nil
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var d int
	switch c.Target {
	case pb.Compare_VALUE:
		d = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_VERSION:
		d = cmpInt(kv.Version, c.GetVersion())
	case pb.Compare_CREATE:
		d = cmpInt(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		d = cmpInt(kv.ModRevision, c.GetModRevision())
	case pb.Compare_LEASE:
		d = cmpInt(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return d == 0
	case pb.Compare_GREATER:
		return d > 0
	case pb.Compare_LESS:
		return d < 0
	case pb.Compare_NOT_EQUAL:
		return d != 0
	}
	return false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
