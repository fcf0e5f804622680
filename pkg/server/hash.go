package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Hash hashes this member's whole database for Maintenance.Hash, with the
// revision it was taken at; like etcd, admins only.
func (s *Server) Hash(ctx context.Context) (*pb.HashResponse, error) {
	if err := s.checkAdmin(ctx); err != nil {
		return nil, err
	}
	rev := s.store.Rev()
	h, err := s.be.Hash()
	if err != nil {
		return nil, err
	}
	return &pb.HashResponse{Header: &pb.ResponseHeader{Revision: rev}, Hash: h}, nil
}
