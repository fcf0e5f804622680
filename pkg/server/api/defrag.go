package api

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Defragmenter is what Maintenance.Defragment needs from a member.
type Defragmenter interface {
	// Defragment compacts this member's database file while it keeps
	// serving; the caller must be allowed to (root when auth is on).
	Defragment(ctx context.Context) error
}

func (s *maintenanceService) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := s.m.Defragment(ctx); err != nil {
		return nil, toStatus(err)
	}
	// etcd answers a defragmentation with no header at all, which its
	// HTTP gateway shows as {}.
	return &pb.DefragmentResponse{}, nil
}
