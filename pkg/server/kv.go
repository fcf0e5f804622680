package server

import (
	"context"
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
	"github.com/kvd-io/kvd/pkg/version"
)

// The methods below are what pkg/server/api calls: writes become raft
// proposals, reads are served from the local store after the barrier the
// API layer asked for.

// Put replicates a put.
func (s *Server) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := s.checkQuota(ctx, r); err != nil {
		return nil, err
	}
	return proposeKV[*pb.PutResponse](ctx, s, &pb.InternalRaftRequest{Put: r})
}

// DeleteRange replicates a delete.
func (s *Server) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	return proposeKV[*pb.DeleteRangeResponse](ctx, s, &pb.InternalRaftRequest{DeleteRange: r})
}

// Txn replicates a txn that writes.
func (s *Server) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := s.checkQuota(ctx, r); err != nil {
		return nil, err
	}
	return proposeKV[*pb.TxnResponse](ctx, s, &pb.InternalRaftRequest{Txn: r})
}

// Compact replicates a compaction and, when physical is asked for, waits
// until the old revisions are gone from the database.
func (s *Server) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	res, err := s.propose(ctx, &pb.InternalRaftRequest{Compaction: r})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	if r.Physical && res.Physical != nil {
		select {
		case <-res.Physical:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stopc:
			return nil, errStopped
		}
	}
	resp, ok := res.Resp.(*pb.CompactionResponse)
	if !ok {
		return nil, errInternal
	}
	return resp, nil
}

// ReadBarrier waits until every write committed before the call is
// applied locally.
func (s *Server) ReadBarrier(ctx context.Context) error {
	if s.isLearner() {
		return rpctypes.ErrGRPCNotSupportedForLearner
	}
	return s.reads.wait(ctx)
}

// LocalRange reads from the local store, what the caller may read.
func (s *Server) LocalRange(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := s.auth.CanRead(auth.InfoFrom(ctx), r.Key, r.RangeEnd); err != nil {
		return nil, apply.ToGRPC(err)
	}
	return s.applier.Range(ctx, r)
}

// LocalTxn runs a read-only txn against the local store, if the caller
// may read everything it names.
func (s *Server) LocalTxn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := apply.CheckReadTxn(s.auth, auth.InfoFrom(ctx), r); err != nil {
		return nil, apply.ToGRPC(err)
	}
	return s.applier.ReadTxn(ctx, r)
}

// ClusterID, MemberID, Term and Rev fill response headers.
func (s *Server) ClusterID() uint64 { return s.cluster.ID() }

// MemberID is the local member's ID.
func (s *Server) MemberID() uint64 { return s.cluster.LocalID() }

// Term is the current raft term.
func (s *Server) Term() uint64 { return s.node.Term() }

// Rev is the store's current revision.
func (s *Server) Rev() int64 { return s.store.Rev() }

// Status describes this member for Maintenance.Status.
func (s *Server) Status(ctx context.Context) (*pb.StatusResponse, error) {
	if err := s.checkUser(ctx); err != nil {
		return nil, err
	}
	st := s.node.Status()
	resp := &pb.StatusResponse{
		Header:           &pb.ResponseHeader{},
		Version:          version.EtcdVersion,
		DbSize:           s.be.Size(),
		DbSizeInUse:      s.be.SizeInUse(),
		Leader:           s.node.Leader(),
		RaftIndex:        st.GetCommit(),
		RaftTerm:         st.GetTerm(),
		RaftAppliedIndex: s.applied.get(),
		IsLearner:        s.isLearner(),
		StorageVersion:   version.ClusterVersion,
		DbSizeQuota:      s.quota.Limit(),
		// kvd has no downgrades; etcd reports one not enabled.
		DowngradeInfo: &pb.DowngradeInfo{},
	}
	// As etcd, the member's troubles: no leader, then each active alarm
	// as "memberID:<decimal id> alarm:<type>".
	if resp.Leader == 0 {
		resp.Errors = append(resp.Errors, "etcdserver: no leader")
	}
	for _, a := range s.Alarms() {
		resp.Errors = append(resp.Errors, alarmText(a))
	}
	return resp, nil
}

// HashKV hashes the key space up to rev, so members can be compared.
func (s *Server) HashKV(ctx context.Context, rev int64) (*pb.HashKVResponse, error) {
	if err := s.checkAdmin(ctx); err != nil {
		return nil, err
	}
	h, hashRev, compactRev, err := s.store.Hash(rev)
	switch {
	case errors.Is(err, mvcc.ErrCompacted):
		return nil, rpctypes.ErrGRPCCompacted
	case errors.Is(err, mvcc.ErrFutureRev):
		return nil, rpctypes.ErrGRPCFutureRev
	case err != nil:
		return nil, err
	}
	return &pb.HashKVResponse{Header: &pb.ResponseHeader{}, Hash: h, CompactRevision: compactRev, HashRevision: hashRev}, nil
}

// Members lists the cluster's members for Cluster.MemberList.
func (s *Server) Members() []*pb.Member {
	ms := s.cluster.Members()
	out := make([]*pb.Member, len(ms))
	for i, m := range ms {
		out[i] = memberToPB(m)
	}
	return out
}
