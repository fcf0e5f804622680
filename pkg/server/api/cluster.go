package api

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Maintenance is what the Maintenance service needs from a member.
type Maintenance interface {
	// Status describes the member; the handler fills the header.
	Status(ctx context.Context) (*pb.StatusResponse, error)
	// HashKV hashes the key space up to rev (0: the current revision).
	HashKV(ctx context.Context, rev int64) (*pb.HashKVResponse, error)
	// MoveLeader hands leadership to member target; only the leader can.
	MoveLeader(ctx context.Context, target uint64) error
	// Alarm lists, raises or clears alarms (see alarm.go).
	Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error)
	Defragmenter
	Hasher
}

// Cluster is what the Cluster service needs from a member.
type Cluster interface {
	// Members lists the cluster's members ordered by ID.
	Members() []*pb.Member
	// ReadBarrier is the wait a linearizable member list needs.
	ReadBarrier(ctx context.Context) error
	// MemberAdd adds a member and returns it, with the ID it was given.
	MemberAdd(ctx context.Context, peerURLs []string, learner bool) (*pb.Member, error)
	MemberRemove(ctx context.Context, id uint64) error
	MemberUpdate(ctx context.Context, id uint64, peerURLs []string) error
	MemberPromote(ctx context.Context, id uint64) error
}

type maintenanceService struct {
	pb.UnimplementedMaintenanceServer
	m   Maintenance
	hdr Header
}

// header completes the header of a member's answer, which may leave it
// out or set only the revision.
func (s *maintenanceService) header(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		h = &pb.ResponseHeader{}
	}
	fillHeader(s.hdr, h, true)
	return h
}

func (s *maintenanceService) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	resp, err := s.m.Status(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp.Header = s.header(resp.Header)
	return resp, nil
}

func (s *maintenanceService) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	if r.Revision < 0 {
		return nil, rpctypes.ErrGRPCFutureRev
	}
	resp, err := s.m.HashKV(ctx, r.Revision)
	if err != nil {
		return nil, toStatus(err)
	}
	fillHeader(s.hdr, resp.Header, true)
	return resp, nil
}

func (s *maintenanceService) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if err := s.m.MoveLeader(ctx, r.TargetID); err != nil {
		return nil, toStatus(err)
	}
	// Like etcd's, the answer carries no header.
	return &pb.MoveLeaderResponse{}, nil
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

// memberHeader fills a member RPC's header and the member list that every
// member RPC returns.
func (s *clusterService) memberHeader() (*pb.ResponseHeader, []*pb.Member) {
	h := &pb.ResponseHeader{}
	fillHeader(s.hdr, h, false)
	return h, s.c.Members()
}

func (s *clusterService) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	m, err := s.c.MemberAdd(ctx, r.PeerURLs, r.IsLearner)
	if err != nil {
		return nil, toStatus(err)
	}
	h, ms := s.memberHeader()
	return &pb.MemberAddResponse{Header: h, Member: m, Members: ms}, nil
}

func (s *clusterService) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if err := s.c.MemberRemove(ctx, r.ID); err != nil {
		return nil, toStatus(err)
	}
	h, ms := s.memberHeader()
	return &pb.MemberRemoveResponse{Header: h, Members: ms}, nil
}

func (s *clusterService) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if err := s.c.MemberUpdate(ctx, r.ID, r.PeerURLs); err != nil {
		return nil, toStatus(err)
	}
	h, ms := s.memberHeader()
	return &pb.MemberUpdateResponse{Header: h, Members: ms}, nil
}

func (s *clusterService) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if err := s.c.MemberPromote(ctx, r.ID); err != nil {
		return nil, toStatus(err)
	}
	h, ms := s.memberHeader()
	return &pb.MemberPromoteResponse{Header: h, Members: ms}, nil
}
