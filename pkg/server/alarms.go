package server

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/backend"
)

// Alarms go through raft like writes: raised by a member that ran out of
// space or by the leader's corruption check, cleared by an operator, and
// applied on every member (see apply.Alarms), so the whole cluster refuses
// the same requests at the same point of its log.

// recoverAlarms loads the active alarms from the database, at start-up
// and after a snapshot replaced it.
func (s *Server) recoverAlarms() error {
	var err error
	s.be.Read(func(tx backend.ReadTx) { err = s.applier.Alarms().Recover(tx) })
	if err != nil {
		return fmt.Errorf("recover alarms: %w", err)
	}
	return nil
}

// Alarm serves Maintenance.Alarm: every action, listing included, is a
// raft entry, as in etcd, so a list reflects every alarm committed before
// it. Listing needs a user while auth is enabled, changing needs root.
func (s *Server) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	check := s.checkAdmin
	if r.Action == pb.AlarmRequest_GET {
		check = s.checkUser
	}
	if err := check(ctx); err != nil {
		return nil, err
	}
	return proposeKV[*pb.AlarmResponse](ctx, s, &pb.InternalRaftRequest{Alarm: r})
}

// Alarms lists the active alarms as this member has applied them.
func (s *Server) Alarms() []*pb.AlarmMember {
	return s.applier.Alarms().List(pb.AlarmType_NONE)
}

// raiseAlarm proposes alarm typ for member and waits until it applies.
func (s *Server) raiseAlarm(ctx context.Context, member uint64, typ pb.AlarmType) error {
	res, err := s.propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: member, Alarm: typ,
	}})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		s.lg.Warn("raise alarm", "member", fmt.Sprintf("%x", member), "alarm", typ.String(), "err", err)
	}
	return err
}

// checkQuota refuses r, a request that may add data, when the database
// would reach the quota with it, and raises NOSPACE for this member
// first, as etcd does, so every member refuses such writes from then on.
func (s *Server) checkQuota(ctx context.Context, r any) error {
	if s.quota.Available(s.be.Size, r) {
		return nil
	}
	if !s.hasAlarm(s.cluster.LocalID(), pb.AlarmType_NOSPACE) {
		s.lg.Warn("database space quota exceeded; raising the NOSPACE alarm",
			"quota-bytes", s.quota.Limit(), "db-size", s.be.Size())
		// The caller gets etcd's error whatever becomes of the alarm: a
		// member that cannot reach a leader says so on the next write.
		_ = s.raiseAlarm(ctx, s.cluster.LocalID(), pb.AlarmType_NOSPACE)
	}
	return rpctypes.ErrGRPCNoSpace
}

func (s *Server) hasAlarm(member uint64, typ pb.AlarmType) bool {
	for _, a := range s.applier.Alarms().List(typ) {
		if a.MemberID == member {
			return true
		}
	}
	return false
}

// newQuota reads --quota-backend-bytes as etcd does: 0 is the default of
// 2 GiB, a negative value turns the quota off, and one above 8 GiB is
// allowed with a warning.
func newQuota(c *Config) apply.Quota {
	q := apply.NewQuota(c.QuotaBackendBytes)
	switch {
	case q.Limit() < 0:
		c.Logger.Info("backend quota disabled", "quota-backend-bytes", c.QuotaBackendBytes)
	case q.Limit() > apply.MaxQuotaBytes:
		c.Logger.Warn("backend quota exceeds the recommended maximum", "quota-backend-bytes", q.Limit(), "maximum", apply.MaxQuotaBytes)
	}
	return q
}

// alarmText is an alarm as etcd prints it in Status errors.
func alarmText(a *pb.AlarmMember) string {
	return fmt.Sprintf("memberID:%d alarm:%s", a.MemberID, a.Alarm)
}
