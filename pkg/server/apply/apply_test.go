package apply

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/lease"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

type fixture struct {
	a     *Applier
	s     *mvcc.Store
	be    *backend.Backend
	l     *lease.Lessor
	index uint64
}

func newFixture(t *testing.T) *fixture {
	be, err := backend.Open(backend.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := mvcc.New(be, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); be.Close() })
	l := lease.New(lease.Config{MinTTL: 2})
	return &fixture{a: New(s, l, auth.New(auth.Config{}), nil), s: s, be: be, l: l}
}

func (f *fixture) apply(r *pb.InternalRaftRequest) *Result {
	f.index++
	return f.a.Apply(f.index, 1, r)
}

func (f *fixture) put(t *testing.T, k, v string) {
	if res := f.apply(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}); res.Err != nil {
		t.Fatal(res.Err)
	}
}

func keys(r *pb.RangeResponse) string {
	var ks []string
	for _, kv := range r.Kvs {
		ks = append(ks, string(kv.Key)+"="+string(kv.Value))
	}
	return strings.Join(ks, ",")
}

func TestRange(t *testing.T) {
	f := newFixture(t)
	f.put(t, "/c", "1") // rev 2
	f.put(t, "/a", "3") // 3
	f.put(t, "/b", "2") // 4
	f.put(t, "/a", "0") // 5: /a version 2
	end := []byte("0")
	tests := []struct {
		name string
		req  *pb.RangeRequest
		want string
		more bool
	}{
		{"key order", &pb.RangeRequest{}, "/a=0,/b=2,/c=1", false},
		{"limit", &pb.RangeRequest{Limit: 2}, "/a=0,/b=2", true},
		{"limit equal to count", &pb.RangeRequest{Limit: 3}, "/a=0,/b=2,/c=1", false},
		{"value target ascends by default", &pb.RangeRequest{SortTarget: pb.RangeRequest_VALUE}, "/a=0,/c=1,/b=2", false},
		{"key descend", &pb.RangeRequest{SortOrder: pb.RangeRequest_DESCEND}, "/c=1,/b=2,/a=0", false},
		{"mod descend", &pb.RangeRequest{SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND}, "/a=0,/b=2,/c=1", false},
		{"create ascend limit", &pb.RangeRequest{SortTarget: pb.RangeRequest_CREATE, SortOrder: pb.RangeRequest_ASCEND, Limit: 1}, "/c=1", true},
		{"version descend", &pb.RangeRequest{SortTarget: pb.RangeRequest_VERSION, SortOrder: pb.RangeRequest_DESCEND, Limit: 1}, "/a=0", true},
		{"min mod filter", &pb.RangeRequest{MinModRevision: 4}, "/a=0,/b=2", false},
		{"max create filter", &pb.RangeRequest{MaxCreateRevision: 3}, "/a=0,/c=1", false},
		{"keys only", &pb.RangeRequest{KeysOnly: true, Limit: 1}, "/a=", true},
		{"count only", &pb.RangeRequest{CountOnly: true}, "", false},
		{"old revision", &pb.RangeRequest{Revision: 3}, "/a=3,/c=1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Key, tt.req.RangeEnd = []byte("/"), end
			resp, err := f.a.Range(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(resp); got != tt.want || resp.More != tt.more || resp.Header.Revision != 5 {
				t.Fatalf("got %q more=%v rev=%d; want %q more=%v rev=5", got, resp.More, resp.Header.Revision, tt.want, tt.more)
			}
			if tt.req.Revision == 0 && resp.Count != 3 {
				t.Fatalf("count %d, want 3", resp.Count)
			}
		})
	}
	for _, rev := range []int64{6, 100} {
		if _, err := f.a.Range(context.Background(), &pb.RangeRequest{Key: []byte("/a"), Revision: rev}); err != rpctypes.ErrGRPCFutureRev {
			t.Errorf("rev %d: %v", rev, err)
		}
	}
}

func TestPutOptions(t *testing.T) {
	f := newFixture(t)
	f.put(t, "k", "v1")
	res := f.apply(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), IgnoreValue: true, PrevKv: true}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	resp := res.Resp.(*pb.PutResponse)
	if string(resp.PrevKv.Value) != "v1" || resp.Header.Revision != 3 {
		t.Fatalf("ignore value with prev kv: %v", resp)
	}
	got, _ := f.a.Range(context.Background(), &pb.RangeRequest{Key: []byte("k")})
	if string(got.Kvs[0].Value) != "v1" || got.Kvs[0].Version != 2 {
		t.Fatalf("ignore value changed the value: %v", got.Kvs[0])
	}
	for _, r := range []*pb.PutRequest{
		{Key: []byte("missing"), IgnoreValue: true},
		{Key: []byte("missing"), IgnoreLease: true},
	} {
		if res := f.apply(&pb.InternalRaftRequest{Put: r}); res.Err != rpctypes.ErrGRPCKeyNotFound {
			t.Errorf("%v: %v", r, res.Err)
		}
	}
	if res := f.apply(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Lease: 5}}); res.Err != rpctypes.ErrGRPCLeaseNotFound {
		t.Errorf("unknown lease: %v", res.Err)
	}
	if rev := f.s.Rev(); rev != 3 {
		t.Fatalf("refused puts changed the revision to %d", rev)
	}
}

func cmpReq(key string, target pb.Compare_CompareTarget, result pb.Compare_CompareResult, v int64, val string) *pb.Compare {
	c := &pb.Compare{Key: []byte(key), Target: target, Result: result}
	switch target {
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: []byte(val)}
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: v}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: v}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: v}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: v}
	}
	return c
}

func TestTxnCompares(t *testing.T) {
	f := newFixture(t)
	f.put(t, "a", "x") // rev 2
	f.put(t, "b", "y") // rev 3
	tests := []struct {
		name string
		cmp  *pb.Compare
		want bool
	}{
		{"value equal", cmpReq("a", pb.Compare_VALUE, pb.Compare_EQUAL, 0, "x"), true},
		{"value greater", cmpReq("a", pb.Compare_VALUE, pb.Compare_GREATER, 0, "w"), true},
		{"value of missing key", cmpReq("zz", pb.Compare_VALUE, pb.Compare_NOT_EQUAL, 0, "x"), false},
		{"version less", cmpReq("a", pb.Compare_VERSION, pb.Compare_LESS, 2, ""), true},
		{"create of missing key is 0", cmpReq("zz", pb.Compare_CREATE, pb.Compare_EQUAL, 0, ""), true},
		{"mod not equal", cmpReq("b", pb.Compare_MOD, pb.Compare_NOT_EQUAL, 3, ""), false},
		{"lease equal", cmpReq("a", pb.Compare_LEASE, pb.Compare_EQUAL, 0, ""), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := f.a.ReadTxn(context.Background(), &pb.TxnRequest{Compare: []*pb.Compare{tt.cmp}})
			if err != nil || resp.Succeeded != tt.want {
				t.Fatalf("succeeded %v err %v, want %v", resp.GetSucceeded(), err, tt.want)
			}
		})
	}
	ranged := cmpReq("a", pb.Compare_MOD, pb.Compare_GREATER, 1, "")
	ranged.RangeEnd = []byte("c")
	resp, _ := f.a.ReadTxn(context.Background(), &pb.TxnRequest{Compare: []*pb.Compare{ranged}})
	if !resp.Succeeded {
		t.Fatal("ranged compare over a and b failed")
	}
	ranged.TargetUnion = &pb.Compare_ModRevision{ModRevision: 2}
	resp, _ = f.a.ReadTxn(context.Background(), &pb.TxnRequest{Compare: []*pb.Compare{ranged}})
	if resp.Succeeded {
		t.Fatal("ranged compare must hold for every key in range")
	}
}

func opPut(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func TestTxnAppliesAllOrNothing(t *testing.T) {
	f := newFixture(t)
	f.put(t, "a", "1")
	nested := &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
		Compare: []*pb.Compare{cmpReq("a", pb.Compare_VALUE, pb.Compare_EQUAL, 0, "1")},
		Success: []*pb.RequestOp{opPut("n", "yes")},
		Failure: []*pb.RequestOp{opPut("n", "no")},
	}}}
	res := f.apply(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{opPut("b", "2"), nested}}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	resp := res.Resp.(*pb.TxnResponse)
	if !resp.Succeeded || resp.Header.Revision != 3 || !resp.Responses[1].GetResponseTxn().Succeeded {
		t.Fatalf("txn: %v", resp)
	}
	got, _ := f.a.Range(context.Background(), &pb.RangeRequest{Key: []byte("n")})
	if string(got.Kvs[0].Value) != "yes" || got.Kvs[0].ModRevision != 3 {
		t.Fatalf("nested txn result: %v", got.Kvs)
	}
	bad := &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("missing"), IgnoreValue: true}}}
	res = f.apply(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{opPut("c", "3"), bad}}})
	if res.Err != rpctypes.ErrGRPCKeyNotFound {
		t.Fatalf("txn with a failing put: %v", res.Err)
	}
	if f.s.Rev() != 3 {
		t.Fatalf("failed txn changed the store: rev %d", f.s.Rev())
	}
	if ci, _ := f.s.ConsistentIndex(); ci != f.index {
		t.Fatalf("consistent index %d, want %d even for a refused request", ci, f.index)
	}
}
