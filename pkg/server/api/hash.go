package api

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Hasher is what Maintenance.Hash needs from a member.
type Hasher interface {
	// Hash hashes the member's whole database; the header it returns
	// holds the revision, and the handler fills the rest.
	Hash(ctx context.Context) (*pb.HashResponse, error)
}

func (s *maintenanceService) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	resp, err := s.m.Hash(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp.Header = s.header(resp.Header)
	return resp, nil
}
