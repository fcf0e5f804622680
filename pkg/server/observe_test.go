package server

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestRequestKind: a slow apply is logged with the kind of request, named
// by its field in InternalRaftRequest, whatever the header says.
func TestRequestKind(t *testing.T) {
	hdr := &pb.RequestHeader{ID: 7}
	for _, tc := range []struct {
		r    *pb.InternalRaftRequest
		want string
	}{
		{&pb.InternalRaftRequest{Header: hdr, Put: &pb.PutRequest{Key: []byte("k")}}, "put"},
		{&pb.InternalRaftRequest{Header: hdr, DeleteRange: &pb.DeleteRangeRequest{}}, "delete_range"},
		{&pb.InternalRaftRequest{Txn: &pb.TxnRequest{}}, "txn"},
		{&pb.InternalRaftRequest{Header: hdr, LeaseGrant: &pb.LeaseGrantRequest{TTL: 5}}, "lease_grant"},
		{&pb.InternalRaftRequest{Header: hdr, AuthUserAdd: &pb.AuthUserAddRequest{Name: "u"}}, "auth_user_add"},
		{&pb.InternalRaftRequest{Header: hdr}, "unknown"},
	} {
		if got := requestKind(tc.r); got != tc.want {
			t.Errorf("requestKind(%v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}
