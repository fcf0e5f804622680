package server

import (
	"encoding/binary"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/membership"
)

// checkConfChange decides, identically on every member, whether a
// committed membership change still makes sense against the member list
// as the log has built it so far.
func (s *Server) checkConfChange(cc *raftpb.ConfChangeV2, c confContext) error {
	for _, ch := range cc.GetChanges() {
		id := ch.GetNodeId()
		if ch.GetType() != raftpb.ConfChangeRemoveNode && c.Member.ID != id {
			return fmt.Errorf("conf change for %x carries member %x", id, c.Member.ID)
		}
		old := s.cluster.Member(id)
		switch ch.GetType() {
		case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
			if c.Promote {
				if old == nil {
					return rpctypes.ErrGRPCMemberNotFound
				}
				if !old.IsLearner {
					return rpctypes.ErrGRPCMemberNotLearner
				}
				continue
			}
			if old != nil {
				return rpctypes.ErrGRPCMemberExist
			}
			if s.cluster.PeerURLOwner(c.Member.PeerURLs, 0) != 0 {
				return rpctypes.ErrGRPCPeerURLExist
			}
			if ch.GetType() == raftpb.ConfChangeAddLearnerNode && countLearners(s.cluster.Members()) >= s.cfg.MaxLearners {
				return rpctypes.ErrGRPCTooManyLearners
			}
		case raftpb.ConfChangeRemoveNode:
			if old == nil {
				return rpctypes.ErrGRPCMemberNotFound
			}
		case raftpb.ConfChangeUpdateNode:
			if old == nil {
				return rpctypes.ErrGRPCMemberNotFound
			}
			if s.cluster.PeerURLOwner(c.Member.PeerURLs, id) != 0 {
				return rpctypes.ErrGRPCPeerURLExist
			}
		}
	}
	return nil
}

// noChange turns a refused change into one raft applies as nothing: raft
// skips changes to node 0.
func noChange(cc *raftpb.ConfChangeV2) *raftpb.ConfChangeV2 {
	out := &raftpb.ConfChangeV2{Context: cc.GetContext()}
	for _, ch := range cc.GetChanges() {
		var none uint64
		out.Changes = append(out.Changes, &raftpb.ConfChangeSingle{Type: ch.Type, NodeId: &none})
	}
	return out
}

// A refused change is recorded by its index, so that replaying the log
// after a restart, with the member list already at its final state, gives
// raft the same outcome as the first time.

func rejectedKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clone(membership.RefusedConfChangePrefix), index)
}

// refusalRecord marks the change at index as refused, in the batch that
// records it applied.
func refusalRecord(index uint64) apply.Meta {
	return apply.Meta{Key: rejectedKey(index), Value: []byte{1}}
}

func rejectedConfChange(be *backend.Backend, index uint64) bool {
	var found bool
	be.Read(func(tx backend.ReadTx) { found = tx.Get(backend.Meta, rejectedKey(index)) != nil })
	return found
}
