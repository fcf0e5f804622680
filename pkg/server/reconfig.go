package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvd-io/kvd/pkg/server/membership"
)

// Runtime reconfiguration: each change is one raft ConfChangeV2 whose
// context carries the member record and the ID of the request waiting for
// it. Requests are checked here, against the member's current view, so that
// applying a committed change never has to refuse it.

// confContext travels in a ConfChangeV2's context.
type confContext struct {
	Request uint64             `json:"request"`
	Member  *membership.Member `json:"member"`
	// Promote marks an AddNode that makes an existing learner a voter,
	// telling it apart from adding a new member that happens to have the
	// same ID.
	Promote bool `json:"promote,omitempty"`
}

// MemberAdd adds a member with peerURLs, as a learner or a voter. The new
// member has no name until it starts and publishes itself.
func (s *Server) MemberAdd(ctx context.Context, peerURLs []string, learner bool) (*pb.Member, error) {
	return s.onLeader(ctx, memberChange{Op: "add", PeerURLs: peerURLs, Learner: learner})
}

func (s *Server) addMember(ctx context.Context, peerURLs []string, learner bool) (*pb.Member, error) {
	urls, err := parsePeerURLs(peerURLs)
	if err != nil {
		return nil, err
	}
	if s.cluster.PeerURLOwner(urls, 0) != 0 {
		return nil, rpctypes.ErrGRPCPeerURLExist
	}
	now := time.Now()
	m := membership.NewMember("", urls, "", &now)
	m.IsLearner = learner
	if s.cluster.Member(m.ID) != nil {
		return nil, rpctypes.ErrGRPCMemberExist
	}
	if learner {
		if countLearners(s.cluster.Members()) >= s.cfg.MaxLearners {
			return nil, rpctypes.ErrGRPCTooManyLearners
		}
	} else if !s.quorumStartedWith(1, 0) {
		return nil, rpctypes.ErrGRPCMemberNotEnoughStarted
	}
	typ := raftpb.ConfChangeAddNode
	if learner {
		typ = raftpb.ConfChangeAddLearnerNode
	}
	if err := s.proposeConfChange(ctx, typ, m, false); err != nil {
		return nil, err
	}
	return memberToPB(m), nil
}

func memberToPB(m *membership.Member) *pb.Member {
	return &pb.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
}

// MoveLeader hands leadership to target and waits until it has it. Only
// the leader can, and only to a voter.
func (s *Server) MoveLeader(ctx context.Context, target uint64) error {
	if err := s.checkAdmin(ctx); err != nil {
		return err
	}
	if s.node.Leader() != s.cluster.LocalID() {
		return rpctypes.ErrGRPCNotLeader
	}
	if m := s.cluster.Member(target); m == nil || m.IsLearner {
		return rpctypes.ErrGRPCBadLeaderTransferee
	}
	if target == s.cluster.LocalID() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	s.node.TransferLeadership(target)
	tick := time.NewTicker(s.cfg.HeartbeatInterval)
	defer tick.Stop()
	for s.node.Leader() != target {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return errLeaderTransferTimeout
		case <-s.stopc:
			return errStopped
		}
	}
	return nil
}

var errLeaderTransferTimeout = status.Error(codes.Unavailable, "etcdserver: request timed out, leader transfer took too long")

// MemberRemove removes member id; a member that removes itself stops.
func (s *Server) MemberRemove(ctx context.Context, id uint64) error {
	_, err := s.onLeader(ctx, memberChange{Op: "remove", ID: id})
	return err
}

func (s *Server) removeMember(ctx context.Context, id uint64) error {
	m := s.cluster.Member(id)
	if m == nil {
		return rpctypes.ErrGRPCMemberNotFound
	}
	if !m.IsLearner {
		if len(s.cluster.Members())-countLearners(s.cluster.Members()) == 1 {
			return rpctypes.ErrGRPCMemberNotEnoughStarted
		}
		if !s.quorumStartedWith(-1, id) {
			return rpctypes.ErrGRPCMemberNotEnoughStarted
		}
	}
	return s.proposeConfChange(ctx, raftpb.ConfChangeRemoveNode, m, false)
}

// MemberUpdate changes member id's peer URLs.
func (s *Server) MemberUpdate(ctx context.Context, id uint64, peerURLs []string) error {
	_, err := s.onLeader(ctx, memberChange{Op: "update", ID: id, PeerURLs: peerURLs})
	return err
}

func (s *Server) updateMember(ctx context.Context, id uint64, peerURLs []string) error {
	urls, err := parsePeerURLs(peerURLs)
	if err != nil {
		return err
	}
	m := s.cluster.Member(id)
	if m == nil {
		return rpctypes.ErrGRPCMemberNotFound
	}
	if s.cluster.PeerURLOwner(urls, id) != 0 {
		return rpctypes.ErrGRPCPeerURLExist
	}
	m.PeerURLs = urls
	return s.proposeConfChange(ctx, raftpb.ConfChangeUpdateNode, m, false)
}

// MemberPromote makes learner id a voter once it has caught up with the
// leader. Only the leader knows how far the learner got, so a follower
// passes the request on to it.
func (s *Server) MemberPromote(ctx context.Context, id uint64) error {
	_, err := s.onLeader(ctx, memberChange{Op: "promote", ID: id})
	return err
}

func (s *Server) promoteMember(ctx context.Context, id uint64) error {
	m := s.cluster.Member(id)
	if m == nil {
		return rpctypes.ErrGRPCMemberNotFound
	}
	if !m.IsLearner {
		return rpctypes.ErrGRPCMemberNotLearner
	}
	if !s.learnerReady(id) {
		return rpctypes.ErrGRPCLearnerNotReady
	}
	if !s.quorumStartedWith(1, 0) {
		return rpctypes.ErrGRPCMemberNotEnoughStarted
	}
	m.IsLearner = false
	return s.proposeConfChange(ctx, raftpb.ConfChangeAddNode, m, true)
}

// learnerReady says whether the learner's log is within a tenth of the
// leader's, the bar etcd sets before it lets a learner vote.
func (s *Server) learnerReady(id uint64) bool {
	st := s.node.Status()
	self, ok := st.Progress[s.cluster.LocalID()]
	learner, ok2 := st.Progress[id]
	if !ok || !ok2 {
		return false
	}
	return float64(learner.Match) >= 0.9*float64(self.Match)
}

// quorumStartedWith says whether, after changing the number of voters by
// delta (dropping member except when removing), enough of them are
// reachable to form a quorum: a change that would leave the cluster
// without one is refused, as etcd's strict reconfiguration check does.
func (s *Server) quorumStartedWith(delta int, except uint64) bool {
	if !s.cfg.StrictReconfigCheck {
		return true
	}
	voters, started := 0, 0
	for _, m := range s.cluster.Members() {
		if m.IsLearner || m.ID == except {
			continue
		}
		voters++
		if m.ID == s.cluster.LocalID() || !s.transport.ActiveSince(m.ID).IsZero() {
			started++
		}
	}
	if delta < 0 {
		return started >= voters/2+1
	}
	return started >= (voters+delta)/2+1
}

func countLearners(ms []*membership.Member) int {
	n := 0
	for _, m := range ms {
		if m.IsLearner {
			n++
		}
	}
	return n
}

func parsePeerURLs(raw []string) ([]string, error) {
	if len(raw) == 0 {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, rpctypes.ErrGRPCMemberBadURLs
		}
		u.Path = ""
		out = append(out, u.String())
	}
	slices.Sort(out)
	return out, nil
}

// proposeConfChange replicates one change to member m and waits until
// this member, the leader, applied it; the caller holds confMu, so one
// change is in flight at a time (raft drops a second while the first is
// pending). Applying checks the change again, on every member, in case
// leadership moved and another leader proposed a clashing one meanwhile.
func (s *Server) proposeConfChange(ctx context.Context, typ raftpb.ConfChangeType, m *membership.Member, promote bool) error {
	id := s.ids.id()
	b, err := json.Marshal(confContext{Request: id, Member: m, Promote: promote})
	if err != nil {
		return err
	}
	cc := &raftpb.ConfChangeV2{
		Changes: []*raftpb.ConfChangeSingle{{Type: typ.Enum(), NodeId: &m.ID}},
		Context: b,
	}
	ch := s.waits.register(id)
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	if err := s.node.ProposeConfChange(ctx, cc); err != nil {
		s.waits.cancel(id)
		return s.proposeError(ctx, err)
	}
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		s.waits.cancel(id)
		return s.proposeError(ctx, ctx.Err())
	case <-s.stopc:
		return errStopped
	}
}

// confContextOf decodes what a committed conf change carries: bootstrap
// entries (ConfChange v1) carry the bare member, runtime ones a
// confContext.
func confContextOf(e *raftpb.Entry, context []byte) (confContext, error) {
	if e.GetType() == raftpb.EntryConfChange {
		m, err := membership.UnmarshalMember(context)
		return confContext{Member: m}, err
	}
	var c confContext
	if err := json.Unmarshal(context, &c); err != nil {
		return c, err
	}
	if c.Member == nil {
		return c, fmt.Errorf("conf change context names no member")
	}
	return c, nil
}
