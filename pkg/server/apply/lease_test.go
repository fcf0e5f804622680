package apply

import (
	"context"
	"errors"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/lease"
)

func grantReq(id, ttl int64) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: id, TTL: ttl}}
}

func revokeReq(id int64) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}}
}

func putLease(k string, id int64) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte("v"), Lease: id}}
}

func TestLeaseRequests(t *testing.T) {
	tests := []struct {
		name    string
		before  []*pb.InternalRaftRequest
		req     *pb.InternalRaftRequest
		wantErr error
	}{
		{"grant", nil, grantReq(7, 60), nil},
		{"grant an existing ID", []*pb.InternalRaftRequest{grantReq(7, 60)}, grantReq(7, 10), rpctypes.ErrGRPCLeaseExist},
		{"grant too long", nil, grantReq(7, lease.MaxTTL+1), rpctypes.ErrGRPCLeaseTTLTooLarge},
		{"revoke unknown", nil, revokeReq(9), rpctypes.ErrGRPCLeaseNotFound},
		{"put with unknown lease", nil, putLease("/a", 9), rpctypes.ErrGRPCLeaseNotFound},
		{"put with revoked lease", []*pb.InternalRaftRequest{grantReq(7, 60), revokeReq(7)}, putLease("/a", 7), rpctypes.ErrGRPCLeaseNotFound},
		{"txn putting with unknown lease changes nothing", []*pb.InternalRaftRequest{grantReq(7, 60)}, &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("/ok"), Lease: 7}}},
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("/bad"), Lease: 8}}},
		}}}, rpctypes.ErrGRPCLeaseNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for _, r := range tt.before {
				if res := f.apply(r); res.Err != nil {
					t.Fatal(res.Err)
				}
			}
			rev := f.s.Rev()
			res := f.apply(tt.req)
			if !errors.Is(res.Err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", res.Err, tt.wantErr)
			}
			if tt.wantErr != nil && f.s.Rev() != rev {
				t.Errorf("a refused request moved the revision from %d to %d", rev, f.s.Rev())
			}
		})
	}
}

func TestGrantRaisesShortTTL(t *testing.T) {
	f := newFixture(t)
	res := f.apply(grantReq(5, 1))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := res.Resp.(*pb.LeaseGrantResponse); got.ID != 5 || got.TTL != 2 {
		t.Errorf("grant = ID %d TTL %d, want ID 5 TTL 2 (the minimum)", got.ID, got.TTL)
	}
}

// A revoke deletes every key of the lease at one revision, and only them;
// keys that moved to another lease or were deleted are not its any more.
func TestRevokeDeletesAttachedKeysAtOneRevision(t *testing.T) {
	f := newFixture(t)
	for _, r := range []*pb.InternalRaftRequest{
		grantReq(1, 60), grantReq(2, 60),
		putLease("/a", 1), putLease("/b", 1), putLease("/c", 1), putLease("/d", 1), putLease("/other", 2),
		putLease("/b", 2), // moves to lease 2
		putLease("/c", 0), // leaves its lease
		{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("/d")}},
		putLease("/d", 0), // back, without a lease
	} {
		if res := f.apply(r); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	revoke := func(id int64, want string) {
		t.Helper()
		before := f.s.Rev()
		if res := f.apply(revokeReq(id)); res.Err != nil {
			t.Fatal(res.Err)
		}
		if f.s.Rev() != before+1 {
			t.Errorf("revision %d after revoking lease %d, want %d", f.s.Rev(), id, before+1)
		}
		got, _ := f.a.Range(context.Background(), &pb.RangeRequest{Key: []byte("/"), RangeEnd: []byte("0")})
		if k := keys(got); k != want {
			t.Errorf("after revoking lease %d: %s, want %s", id, k, want)
		}
	}
	revoke(1, "/b=v,/c=v,/d=v,/other=v")
	revoke(2, "/c=v,/d=v")
}

// Leases and their keys come back from the database alone, as after a
// restart or an installed snapshot.
func TestLeasesRecoverFromDatabase(t *testing.T) {
	f := newFixture(t)
	for _, r := range []*pb.InternalRaftRequest{
		grantReq(1, 60), grantReq(2, 100), putLease("/a", 1), putLease("/b", 2), putLease("/c", 2),
		{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{{ID: 2, Remaining_TTL: 40}}}},
	} {
		if res := f.apply(r); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	l := lease.New(lease.Config{MinTTL: 2})
	var err error
	f.be.Read(func(tx backend.ReadTx) { err = l.Recover(tx, storeKVs(f)) })
	if err != nil {
		t.Fatal(err)
	}
	if ids := l.Leases(); !slices.Equal(ids, []int64{1, 2}) {
		t.Fatalf("recovered leases %v", ids)
	}
	l.Promote(0)
	st, err := l.TimeToLive(2, true)
	if err != nil {
		t.Fatal(err)
	}
	if st.GrantedTTL != 100 || st.TTL > 40 || st.TTL < 39 || !slices.Equal(st.Keys, []string{"/b", "/c"}) {
		t.Errorf("lease 2 recovered as %+v, want granted 100, about 40 left (checkpointed), keys /b /c", st)
	}
}

func storeKVs(f *fixture) func(yield func([]byte, int64)) {
	return func(yield func([]byte, int64)) {
		rr, _ := f.a.Range(context.Background(), &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
		for _, kv := range rr.Kvs {
			yield(kv.Key, kv.Lease)
		}
	}
}
