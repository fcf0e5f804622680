package server

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/kvd-io/kvd/pkg/server/metrics"
)

// What an operator sees of a running member besides its answers: metrics,
// the reads behind the health endpoints, and slow applies in the log.

// newMetrics builds the member's registry. Its sources read the parts of
// the server when a scrape comes, which happens only while the member
// serves, after they are all open and before they close.
func (s *Server) newMetrics() *metrics.Metrics {
	return metrics.New(metrics.Sources{
		CommittedIndex:   func() uint64 { return s.node.CommitIndex() },
		AppliedIndex:     s.applied.get,
		PendingProposals: s.waits.len,
		LeaderChanges:    func() uint64 { return s.node.LeaderChanges() },
		HasLeader:        func() bool { return s.node.Leader() != 0 },
		IsLeader:         s.isLeader,
		IsLearner:        s.isLearner,
		DBSize:           func() int64 { return s.be.Size() },
		DBSizeInUse:      func() int64 { return s.be.SizeInUse() },
		Keys:             func() int { return s.store.KeyCount() },
		Watchers:         func() int { w, _, _ := s.watchable.Counts(); return w },
		SlowWatchers:     func() int { _, slow, _ := s.watchable.Counts(); return slow },
		WatchStreams:     func() int { _, _, n := s.watchable.Counts(); return n },
		Leases:           func() int { return s.lessor.Count() },
	}, metrics.Options{Extensive: s.cfg.Metrics == "extensive"})
}

// ProbeRead is the read behind the health checks: a one-key range of the
// local store with no permission check, after a linearizable barrier
// unless serializable. A learner's barrier is allowed here, as in etcd,
// so that its readiness shows whether it keeps up with the leader.
func (s *Server) ProbeRead(ctx context.Context, serializable bool) error {
	if !serializable {
		if err := s.reads.wait(ctx); err != nil {
			return err
		}
	}
	_, err := s.applier.Range(ctx, &pb.RangeRequest{Key: []byte{0}, KeysOnly: true, Limit: 1})
	return err
}

// IsLearner says whether this member is a learner.
func (s *Server) IsLearner() bool { return s.isLearner() }

// ActiveAlarms lists the cluster's active alarms, which /health and
// /readyz report.
func (s *Server) ActiveAlarms() []*pb.AlarmMember { return s.Alarms() }

// noteSlowApply logs an entry whose apply took longer than
// --warning-apply-duration, once, with what kind of request it was, as
// etcd's "apply request took too long".
func (s *Server) noteSlowApply(r *pb.InternalRaftRequest, took time.Duration) {
	s.metrics.SlowApply()
	s.lg.Warn("apply request took too long", "took", took, "expected-duration", s.cfg.WarningApplyDuration,
		"kind", requestKind(r), "id", r.GetHeader().GetID())
}

// requestKind names the request an entry carries by its field in
// InternalRaftRequest: put, txn, lease_grant, auth_user_add...
func requestKind(r *pb.InternalRaftRequest) string {
	kind := "unknown"
	r.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.Name() == "header" {
			return true
		}
		kind = string(fd.Name())
		return false
	})
	return kind
}
