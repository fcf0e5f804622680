package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Membership changes are made by the leader alone: it has applied every
// earlier change, so its checks see the real member list, it knows how far
// a learner got, and, proposing one change at a time, it never has raft
// drop one for being proposed while another is pending. A follower passes
// the request to the leader over the peer URLs.

// memberChange is a membership request passed to the leader.
type memberChange struct {
	Op       string   `json:"op"` // add, remove, update or promote
	ID       uint64   `json:"id,omitempty"`
	PeerURLs []string `json:"peerURLs,omitempty"`
	Learner  bool     `json:"learner,omitempty"`
}

// changeResult is the leader's answer: the added member, or the error's
// etcd description.
type changeResult struct {
	Member *pb.Member `json:"member,omitempty"`
	Error  string     `json:"error,omitempty"`
}

// forwarded is the errors a client would have had from the leader itself,
// for requests a follower passes to it (membership changes, lease renewals).
var forwarded = map[string]error{}

func init() {
	for _, err := range []error{
		rpctypes.ErrGRPCLearnerNotReady, rpctypes.ErrGRPCMemberNotLearner, rpctypes.ErrGRPCMemberNotFound,
		rpctypes.ErrGRPCMemberNotEnoughStarted, rpctypes.ErrGRPCMemberExist, rpctypes.ErrGRPCPeerURLExist,
		rpctypes.ErrGRPCTooManyLearners, rpctypes.ErrGRPCMemberBadURLs, rpctypes.ErrGRPCNotLeader,
		rpctypes.ErrGRPCTimeout, rpctypes.ErrGRPCNoLeader, rpctypes.ErrGRPCStopped,
		rpctypes.ErrGRPCLeaseNotFound,
	} {
		forwarded[rpctypes.ErrorDesc(err)] = err
	}
}

func (s *Server) isLeader() bool { return s.node.Leader() == s.cluster.LocalID() }

// onLeader makes a membership change: here when this member leads,
// otherwise by passing mc to the leader.
func (s *Server) onLeader(ctx context.Context, mc memberChange) (*pb.Member, error) {
	if err := s.checkAdmin(ctx); err != nil {
		return nil, err
	}
	if !s.isLeader() {
		return s.forwardChange(ctx, mc)
	}
	return s.change(ctx, mc)
}

// change makes mc here, the leader, one change at a time.
func (s *Server) change(ctx context.Context, mc memberChange) (*pb.Member, error) {
	s.confMu.Lock()
	defer s.confMu.Unlock()
	switch mc.Op {
	case "add":
		return s.addMember(ctx, mc.PeerURLs, mc.Learner)
	case "remove":
		return nil, s.removeMember(ctx, mc.ID)
	case "update":
		return nil, s.updateMember(ctx, mc.ID, mc.PeerURLs)
	case "promote":
		return nil, s.promoteMember(ctx, mc.ID)
	}
	return nil, fmt.Errorf("unknown membership change %q", mc.Op)
}

func (s *Server) serveChange(w http.ResponseWriter, r *http.Request) {
	var mc memberChange
	if !decodePeerRequest(w, r, "membership change", &mc) {
		return
	}
	var res changeResult
	if !s.isLeader() {
		// Passing it on again could loop while leadership moves.
		res.Error = rpctypes.ErrorDesc(rpctypes.ErrGRPCNotLeader)
	} else if m, err := s.change(r.Context(), mc); err != nil {
		res.Error = rpctypes.ErrorDesc(err)
	} else {
		res.Member = m
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// forwardChange asks the leader to make mc and returns its answer.
func (s *Server) forwardChange(ctx context.Context, mc memberChange) (*pb.Member, error) {
	if s.isLearner() {
		return nil, rpctypes.ErrGRPCNotSupportedForLearner
	}
	leader := s.cluster.Member(s.node.Leader())
	if leader == nil {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	body, err := json.Marshal(mc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	var res changeResult
	if _, err := askPeers(ctx, s.peerClient(0), http.MethodPost, leader.PeerURLs, changePath, body, &res); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, rpctypes.ErrGRPCTimeout
		}
		return nil, fmt.Errorf("pass the membership change to the leader: %w", err)
	}
	switch {
	case res.Error == "":
		// The answer lists the members as this member knows them: wait
		// until it has applied the change too. The change is made either
		// way, so a failed wait is no error.
		_ = s.reads.wait(ctx)
		return res.Member, nil
	case forwarded[res.Error] != nil:
		return nil, forwarded[res.Error]
	}
	return nil, errors.New(res.Error)
}
