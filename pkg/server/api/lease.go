package api

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Leases is what the Lease service needs from a member.
type Leases interface {
	// LeaseGrant and LeaseRevoke go through raft.
	LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error)
	LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error)
	// LeaseRenew and LeaseTimeToLive are answered by the leader, which
	// keeps lease time.
	LeaseRenew(ctx context.Context, id int64) (ttl int64, err error)
	LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error)
	LeaseLeases(ctx context.Context) (*pb.LeaseLeasesResponse, error)
}

type leaseService struct {
	pb.UnimplementedLeaseServer
	l   Leases
	hdr Header
}

// LeaseGrant leaves the TTL's bounds to the lessor, which refuses a TTL
// too long as the entry applies, changing nothing.
func (s *leaseService) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	resp, err := s.l.LeaseGrant(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

func (s *leaseService) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := s.l.LeaseRevoke(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

// LeaseTimeToLive answers TTL -1 for a lease that does not exist, not an
// error, as etcd does.
func (s *leaseService) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp, err := s.l.LeaseTimeToLive(ctx, r)
	switch {
	case errors.Is(err, rpctypes.ErrGRPCLeaseNotFound):
		resp = &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{}, ID: r.ID, TTL: -1}
	case err != nil:
		return nil, toStatus(err)
	}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

func (s *leaseService) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp, err := s.l.LeaseLeases(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

// LeaseKeepAlive renews each lease the client names, in order, and
// answers each with the TTL granted: 0 for a lease that is gone, which
// tells the client to stop. The header is taken before the renewal, so
// its revision is never later than the renewal itself.
func (s *leaseService) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &pb.LeaseKeepAliveResponse{ID: req.ID, Header: &pb.ResponseHeader{}}
		fillHeader(s.hdr, resp.Header, true)
		ttl, err := s.l.LeaseRenew(stream.Context(), req.ID)
		switch {
		case errors.Is(err, rpctypes.ErrGRPCLeaseNotFound):
			ttl = 0
		case err != nil:
			return toStatus(err)
		}
		resp.TTL = ttl
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
