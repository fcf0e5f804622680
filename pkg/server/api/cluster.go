package api

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Maintenance is what the Maintenance service needs from a member.
type Maintenance interface {
	// Status describes the member; the handler fills the header.
	Status(ctx context.Context) (*pb.StatusResponse, error)
}

// Cluster is what the Cluster service needs from a member.
type Cluster interface {
	// Members lists the cluster's members ordered by ID.
	Members() []*pb.Member
	// ReadBarrier is the wait a linearizable member list needs.
	ReadBarrier(ctx context.Context) error
}

type maintenanceService struct {
	pb.UnimplementedMaintenanceServer
	m   Maintenance
	hdr Header
}

// Alarm answers GET with no alarms: kvd raises none yet (space quotas
// and corruption checks arrive with their own alarms). Raising or clearing
// an alarm by hand is refused until then.
func (s *maintenanceService) Alarm(_ context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	if r.Action != pb.AlarmRequest_GET {
		return nil, status.Error(codes.Unimplemented, "kvd: alarms cannot be activated or deactivated yet")
	}
	resp := &pb.AlarmResponse{Header: &pb.ResponseHeader{}}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

func (s *maintenanceService) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	resp, err := s.m.Status(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if resp.Header == nil {
		resp.Header = &pb.ResponseHeader{}
	}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

type clusterService struct {
	pb.UnimplementedClusterServer
	c   Cluster
	hdr Header
}

func (s *clusterService) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if r.Linearizable {
		if err := s.c.ReadBarrier(ctx); err != nil {
			return nil, toStatus(err)
		}
	}
	resp := &pb.MemberListResponse{Header: &pb.ResponseHeader{}, Members: s.c.Members()}
	// etcd's cluster service leaves the revision out of its headers.
	fillHeader(s.hdr, resp.Header, false)
	return resp, nil
}
