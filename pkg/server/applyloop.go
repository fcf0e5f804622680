package server

import (
	"cmp"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/membership"
)

// applyLoop applies committed entries in log order until the raft node
// stops. It is the only writer of the state machine.
func (s *Server) applyLoop() {
	for c := range s.node.Committed() {
		if c.Snapshot != nil {
			if err := s.installSnapshot(c.Snapshot); err != nil {
				// Applying entries over the old state would diverge from
				// the cluster; stop and let the operator look.
				s.lg.Error("install snapshot from leader; stopping", "index", c.Snapshot.GetMetadata().GetIndex(), "err", err)
				s.fail(err)
				return
			}
		}
		// Read once a batch: applying an entry only moves the consistent
		// index up to that entry, past the ones before it.
		ci, _ := s.store.ConsistentIndex()
		for _, e := range c.Entries {
			s.applyEntry(e, ci)
		}
		if n := len(c.Entries); n > 0 {
			s.applied.set(c.Entries[n-1].GetIndex())
		}
		s.maybeSnapshot()
	}
}

// applyEntry applies one entry. Entries at or below ci, the store's
// consistent index, were applied before a restart, or are part of an
// installed snapshot: their effects are in the database already, and only
// raft's own bookkeeping of conf changes must be redone.
func (s *Server) applyEntry(e *raftpb.Entry, ci uint64) {
	index, term := e.GetIndex(), e.GetTerm()
	switch e.GetType() {
	case raftpb.EntryNormal:
		if index <= ci {
			return
		}
		if len(e.Data) == 0 {
			// A new leader's empty entry: once it applies, so has
			// everything earlier leaders committed, and the leader can
			// take over keeping lease time.
			s.applier.ApplyNoop(index, term)
			if s.isLeader() && term == s.node.Term() {
				s.lessor.Promote(s.cfg.ElectionTimeout)
				s.leadingApplied.Store(term)
			}
			return
		}
		r, id, err := s.waits.decode(e.Data)
		if err != nil {
			s.lg.Error("skip undecodable raft entry", "index", index, "err", err)
			s.applier.ApplyNoop(index, term)
			return
		}
		var res *apply.Result
		start := time.Now()
		if r.ClusterMemberAttrSet != nil {
			res = s.applyMemberAttrs(index, term, r.ClusterMemberAttrSet)
		} else {
			res = s.applier.Apply(index, term, r)
		}
		if took := time.Since(start); took > s.cfg.WarningApplyDuration {
			s.noteSlowApply(r, took)
		}
		if changesAuth(r) {
			s.authChanged.fire()
		}
		s.waits.trigger(id, res)
	case raftpb.EntryConfChange:
		cc := new(raftpb.ConfChange)
		if err := proto.Unmarshal(e.Data, cc); err != nil {
			s.lg.Error("skip undecodable conf change", "index", index, "err", err)
			return
		}
		s.applyConfChange(e, cc, ci)
	case raftpb.EntryConfChangeV2:
		cc := new(raftpb.ConfChangeV2)
		if err := proto.Unmarshal(e.Data, cc); err != nil {
			s.lg.Error("skip undecodable conf change", "index", index, "err", err)
			return
		}
		s.applyConfChange(e, cc, ci)
	}
}

func (s *Server) applyConfChange(e *raftpb.Entry, cc raftpb.ConfChangeI, ci uint64) {
	index, term := e.GetIndex(), e.GetTerm()
	v2 := cc.AsV2()
	if index <= ci {
		// Applied before a restart: raft must see the same outcome again,
		// while the member list already holds it.
		if rejectedConfChange(s.be, index) {
			v2 = noChange(v2)
		}
		s.confState.set(s.node.ApplyConfChange(v2))
		return
	}
	c, err := confContextOf(e, v2.GetContext())
	if err == nil {
		err = s.checkConfChange(v2, c)
	}
	if err != nil {
		s.lg.Warn("refused a committed membership change", "index", index, "err", err)
		cs := s.node.ApplyConfChange(noChange(v2))
		s.confState.set(cs)
		s.applier.ApplyMeta(index, term, confStateRecord(cs), refusalRecord(index))
		s.waits.trigger(c.Request, &apply.Result{Err: err})
		return
	}
	cs := s.node.ApplyConfChange(v2)
	s.confState.set(cs)
	for _, ch := range v2.GetChanges() {
		switch ch.GetType() {
		case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode, raftpb.ConfChangeUpdateNode:
			s.applyMemberChange(c.Member, ch.GetType())
		case raftpb.ConfChangeRemoveNode:
			s.applyMemberRemoval(ch.GetNodeId())
		}
	}
	s.applier.ApplyMeta(index, term, confStateRecord(cs))
	s.waits.trigger(c.Request, &apply.Result{})
}

// applyMemberChange records an added, promoted or updated member. What a
// member publishes about itself (name, client URLs) is kept across
// changes that do not carry it.
func (s *Server) applyMemberChange(m *membership.Member, typ raftpb.ConfChangeType) {
	if old := s.cluster.Member(m.ID); old != nil {
		m.Name = cmp.Or(m.Name, old.Name)
		if len(m.ClientURLs) == 0 {
			m.ClientURLs = old.ClientURLs
		}
	}
	if typ != raftpb.ConfChangeUpdateNode {
		m.IsLearner = typ == raftpb.ConfChangeAddLearnerNode
	}
	if m.ID == s.cluster.LocalID() {
		m.ClientURLs = s.cfg.AdvertiseClientURLs
	} else {
		s.transport.AddPeer(m.ID, m.PeerURLs)
	}
	s.cluster.Add(m)
	if err := saveMember(s.be, m); err != nil {
		s.lg.Error("persist member", "id", fmt.Sprintf("%x", m.ID), "err", err)
	}
	s.lg.Info("member changed", "id", fmt.Sprintf("%x", m.ID), "change", typ.String(), "peer-urls", m.PeerURLs, "learner", m.IsLearner)
}

func (s *Server) applyMemberRemoval(id uint64) {
	s.cluster.Remove(id)
	if err := deleteMember(s.be, id); err != nil {
		s.lg.Error("forget member", "id", fmt.Sprintf("%x", id), "err", err)
	}
	s.lg.Info("member removed", "id", fmt.Sprintf("%x", id))
	if id == s.cluster.LocalID() {
		s.lg.Warn("this member was removed from the cluster; stopping")
		s.fail(errMemberRemoved)
		return
	}
	s.transport.RemovePeer(id)
}

// applyMemberAttrs records what a member published about itself once it
// started: its name and client URLs.
func (s *Server) applyMemberAttrs(index, term uint64, r *membershippb.ClusterMemberAttrSetRequest) *apply.Result {
	defer s.applier.ApplyNoop(index, term)
	m := s.cluster.Member(r.GetMember_ID())
	if m == nil {
		return &apply.Result{Err: rpctypes.ErrGRPCMemberNotFound}
	}
	m.Name = r.GetMemberAttributes().GetName()
	m.ClientURLs = r.GetMemberAttributes().GetClientUrls()
	s.cluster.Add(m)
	if err := saveMember(s.be, m); err != nil {
		s.lg.Error("persist member", "id", fmt.Sprintf("%x", m.ID), "err", err)
	}
	return &apply.Result{}
}

// maybeSnapshot records a raft snapshot every --snapshot-count applied
// entries, so the WAL can be truncated. The database is committed first:
// the snapshot promises that everything up to its index is durable there.
func (s *Server) maybeSnapshot() {
	applied := s.applied.get()
	if applied-s.snapIndex <= s.cfg.SnapshotCount {
		s.maybeCompactLog(applied)
		return
	}
	start := time.Now()
	s.be.ForceCommit()
	if err := s.node.Snapshot(applied, s.confState.get()); err != nil {
		s.lg.Error("raft snapshot", "index", applied, "err", err)
		return
	}
	s.metrics.ObserveSnapshotSave(time.Since(start))
	s.lg.Info("saved raft snapshot", "index", applied)
	s.snapIndex = applied
}

// logCompactEvery is how many applied entries pass between two trims of
// the raft log held in memory, etcd's figure.
const logCompactEvery = 100

// maybeCompactLog trims the raft log held in memory to the catch-up
// entries behind applied, between two snapshots.
func (s *Server) maybeCompactLog(applied uint64) {
	if applied-s.logCompactIndex <= logCompactEvery {
		return
	}
	if err := s.node.CompactLog(applied, s.confState.get()); err != nil {
		s.lg.Error("compact raft log in memory", "index", applied, "err", err)
		return
	}
	s.logCompactIndex = applied
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

// changesAuth says whether r may change who may read what.
func changesAuth(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil || r.AuthUserDelete != nil ||
		r.AuthUserGrantRole != nil || r.AuthUserRevokeRole != nil || r.AuthRoleDelete != nil ||
		r.AuthRoleGrantPermission != nil || r.AuthRoleRevokePermission != nil
}
