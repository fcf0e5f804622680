package client

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Cluster reads the cluster's membership.
type Cluster interface {
	// MemberList lists the members. It is linearizable, answered through
	// the leader, unless WithSerializable is given.
	MemberList(ctx context.Context, opts ...OpOption) (*pb.MemberListResponse, error)
}

type cluster struct{ remote pb.ClusterClient }

func (c *cluster) MemberList(ctx context.Context, opts ...OpOption) (*pb.MemberListResponse, error) {
	op := newOp(opGet, "", "", opts)
	resp, err := c.remote.MemberList(ctx, &pb.MemberListRequest{Linearizable: !op.serializable})
	return resp, toErr(ctx, err)
}
