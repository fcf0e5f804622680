package api

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func put(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
}

func del(k, end string) *pb.RequestOp {
	r := &pb.DeleteRangeRequest{Key: []byte(k)}
	if end != "" {
		r.RangeEnd = []byte(end)
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
}

func get(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
}

func nested(then, els []*pb.RequestOp) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: then, Failure: els}}}
}

func ops(o ...*pb.RequestOp) []*pb.RequestOp { return o }

func TestCheckTxn(t *testing.T) {
	tests := []struct {
		name string
		txn  *pb.TxnRequest
		want error
	}{
		{"distinct puts", &pb.TxnRequest{Success: ops(put("a"), put("b"))}, nil},
		{"same key twice", &pb.TxnRequest{Success: ops(put("a"), put("a"))}, rpctypes.ErrGRPCDuplicateKey},
		{"same key in both branches", &pb.TxnRequest{Success: ops(put("a")), Failure: ops(put("a"))}, nil},
		{"put inside deleted range", &pb.TxnRequest{Success: ops(del("a", "c"), put("b"))}, rpctypes.ErrGRPCDuplicateKey},
		{"put at range end", &pb.TxnRequest{Success: ops(del("a", "c"), put("c"))}, nil},
		{"put of deleted key", &pb.TxnRequest{Success: ops(del("a", ""), put("a"))}, rpctypes.ErrGRPCDuplicateKey},
		{"from-key delete covers nothing", &pb.TxnRequest{Success: ops(del("a", "\x00"), put("b"))}, nil},
		{"nested put clashes with outer", &pb.TxnRequest{Success: ops(put("a"), nested(ops(put("a")), nil))}, rpctypes.ErrGRPCDuplicateKey},
		{"nested branches may share a key", &pb.TxnRequest{Success: ops(nested(ops(put("a")), ops(put("a"))))}, nil},
		{"nested delete clashes with outer put", &pb.TxnRequest{Success: ops(nested(ops(del("a", "")), nil), put("a"))}, rpctypes.ErrGRPCDuplicateKey},
		{"reads never clash", &pb.TxnRequest{Success: ops(get("a"), get("a"), put("a"))}, nil},
		{"too many ops", &pb.TxnRequest{Success: ops(put("1"), put("2"), put("3"), put("4"), put("5"))}, rpctypes.ErrGRPCTooManyOps},
		{"too many compares", &pb.TxnRequest{Compare: make([]*pb.Compare, 5)}, rpctypes.ErrGRPCTooManyOps},
		{"empty compare key", &pb.TxnRequest{Compare: []*pb.Compare{{}}}, rpctypes.ErrGRPCEmptyKey},
		{"empty put key", &pb.TxnRequest{Success: ops(put(""))}, rpctypes.ErrGRPCEmptyKey},
		{"op without request", &pb.TxnRequest{Success: ops(&pb.RequestOp{})}, rpctypes.ErrGRPCKeyNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkTxn(tt.txn, 4); got != tt.want {
				t.Fatalf("checkTxn = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckPutAndRange(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"empty put key", checkPut(&pb.PutRequest{}), rpctypes.ErrGRPCEmptyKey},
		{"ignore value with value", checkPut(&pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true}), rpctypes.ErrGRPCValueProvided},
		{"ignore lease with lease", checkPut(&pb.PutRequest{Key: []byte("a"), Lease: 1, IgnoreLease: true}), rpctypes.ErrGRPCLeaseProvided},
		{"plain put", checkPut(&pb.PutRequest{Key: []byte("a")}), nil},
		{"empty range key", checkRange(&pb.RangeRequest{}), rpctypes.ErrGRPCEmptyKey},
		{"bad sort order", checkRange(&pb.RangeRequest{Key: []byte("a"), SortOrder: 9}), rpctypes.ErrGRPCInvalidSortOption},
		{"bad sort target", checkRange(&pb.RangeRequest{Key: []byte("a"), SortTarget: 9}), rpctypes.ErrGRPCInvalidSortOption},
		{"empty delete key", checkDelete(&pb.DeleteRangeRequest{}), rpctypes.ErrGRPCEmptyKey},
	}
	for _, tt := range tests {
		if tt.err != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.want)
		}
	}
}

func TestNextChunk(t *testing.T) {
	tests := []struct {
		limit        int64
		size, target int
		want         int64
	}{
		{10, 100, 1000, 20},
		{10, 900, 1000, 10},
		{10, 5000, 1000, 5},
		{1, 5000, 1000, 1},
	}
	for _, tt := range tests {
		if got := nextChunk(tt.limit, tt.size, tt.target); got != tt.want {
			t.Errorf("nextChunk(%d, %d, %d) = %d, want %d", tt.limit, tt.size, tt.target, got, tt.want)
		}
	}
}
