package server

import (
	"fmt"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/membership"
)

// applyLoop applies committed entries in log order until the raft node
// stops. It is the only writer of the state machine.
func (s *Server) applyLoop() {
	ci, _ := s.store.ConsistentIndex()
	for c := range s.node.Committed() {
		if c.Snapshot != nil {
			s.lg.Error("received a raft snapshot to install; snapshot transfer comes with clustering",
				"index", c.Snapshot.GetMetadata().GetIndex())
		}
		for _, e := range c.Entries {
			s.applyEntry(e, ci)
		}
		if n := len(c.Entries); n > 0 {
			s.applied.set(c.Entries[n-1].GetIndex())
		}
		s.maybeSnapshot()
	}
}

// applyEntry applies one entry. Entries at or below the consistent index
// the store had at start-up were applied before a restart: their effects
// are in the database already, and only raft's own bookkeeping of conf
// changes must be redone.
func (s *Server) applyEntry(e *raftpb.Entry, ci uint64) {
	index, term := e.GetIndex(), e.GetTerm()
	switch e.GetType() {
	case raftpb.EntryNormal:
		if index <= ci {
			return
		}
		if len(e.Data) == 0 {
			// A new leader's empty entry.
			s.applier.ApplyNoop(index, term)
			return
		}
		r := new(pb.InternalRaftRequest)
		if err := proto.Unmarshal(e.Data, r); err != nil {
			s.lg.Error("skip undecodable raft entry", "index", index, "err", err)
			s.applier.ApplyNoop(index, term)
			return
		}
		res := s.applier.Apply(index, term, r)
		s.waits.trigger(r.GetHeader().GetID(), res)
	case raftpb.EntryConfChange:
		cc := new(raftpb.ConfChange)
		if err := proto.Unmarshal(e.Data, cc); err != nil {
			s.lg.Error("skip undecodable conf change", "index", index, "err", err)
			return
		}
		s.applyConfChange(index, term, cc, ci)
	case raftpb.EntryConfChangeV2:
		cc := new(raftpb.ConfChangeV2)
		if err := proto.Unmarshal(e.Data, cc); err != nil {
			s.lg.Error("skip undecodable conf change", "index", index, "err", err)
			return
		}
		s.applyConfChange(index, term, cc, ci)
	}
}

func (s *Server) applyConfChange(index, term uint64, cc raftpb.ConfChangeI, ci uint64) {
	s.confState.set(s.node.ApplyConfChange(cc))
	if index <= ci {
		return
	}
	for _, ch := range cc.AsV2().GetChanges() {
		id := ch.GetNodeId()
		switch ch.GetType() {
		case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
			m, err := membership.UnmarshalMember(cc.AsV2().GetContext())
			if err != nil || m.ID != id {
				s.lg.Error("conf change without a matching member", "index", index, "node", fmt.Sprintf("%x", id))
				continue
			}
			m.IsLearner = ch.GetType() == raftpb.ConfChangeAddLearnerNode
			if m.ID == s.cluster.LocalID() {
				m.ClientURLs = s.cfg.AdvertiseClientURLs
			}
			s.cluster.Add(m)
			if err := saveMember(s.be, m); err != nil {
				s.lg.Error("persist member", "id", fmt.Sprintf("%x", id), "err", err)
			}
		case raftpb.ConfChangeRemoveNode:
			s.cluster.Remove(id)
			if err := deleteMember(s.be, id); err != nil {
				s.lg.Error("forget member", "id", fmt.Sprintf("%x", id), "err", err)
			}
		}
	}
	s.applier.ApplyNoop(index, term)
}

// maybeSnapshot records a raft snapshot every --snapshot-count applied
// entries, so the WAL can be truncated. The database is committed first:
// the snapshot promises that everything up to its index is durable there.
func (s *Server) maybeSnapshot() {
	applied := s.applied.get()
	if applied-s.snapIndex <= s.cfg.SnapshotCount {
		return
	}
	s.be.ForceCommit()
	if err := s.node.Snapshot(applied, s.confState.get()); err != nil {
		s.lg.Error("raft snapshot", "index", applied, "err", err)
		return
	}
	s.lg.Info("saved raft snapshot", "index", applied)
	s.snapIndex = applied
}

// confStateHolder keeps the latest raft configuration for snapshots.
type confStateHolder struct {
	mu sync.Mutex
	cs *raftpb.ConfState
}

func (h *confStateHolder) set(cs *raftpb.ConfState) {
	h.mu.Lock()
	h.cs = cs
	h.mu.Unlock()
}

func (h *confStateHolder) get() *raftpb.ConfState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cs
}
