package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/membership"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
	"github.com/kvd-io/kvd/pkg/server/raftnode"
)

// A member that fell too far behind receives the leader's database with a
// raft snapshot. The transport saves it next to the raft snapshots; the
// apply loop swaps it in when raft hands the snapshot over.

func (c *Config) snapDir() string { return filepath.Join(c.memberDir(), "snap") }

// installSnapshot replaces the local state with the database that came
// with snap, then takes the member list from it.
func (s *Server) installSnapshot(snap *raftpb.Snapshot) error {
	index := snap.GetMetadata().GetIndex()
	path := raftnode.SnapshotDBPath(s.cfg.snapDir(), index)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("database for snapshot %d: %w", index, err)
	}
	if err := s.store.Restore(func() error { return s.be.Replace(path) }); err != nil {
		return fmt.Errorf("restore store from snapshot %d: %w", index, err)
	}
	s.watchable.Restored()
	if err := s.recoverLeases(); err != nil {
		return err
	}
	if err := s.recoverAuth(); err != nil {
		return err
	}
	s.authChanged.fire()
	if err := s.recoverAlarms(); err != nil {
		return err
	}
	if err := s.reloadMembers(); err != nil {
		return err
	}
	s.snapIndex = index
	s.confState.set(snap.GetMetadata().GetConfState())
	ci, _ := s.store.ConsistentIndex()
	s.applied.set(max(ci, index))
	s.lg.Info("installed snapshot from leader", "index", index, "consistent-index", ci, "revision", s.store.Rev())
	return nil
}

// reloadMembers makes the member list, and the peers the transport talks
// to, what the database says.
func (s *Server) reloadMembers() error {
	members, err := loadMembers(s.be)
	if err != nil {
		return err
	}
	known := map[uint64]bool{}
	for _, m := range members {
		known[m.ID] = true
		if m.ID == s.cluster.LocalID() {
			m.ClientURLs = s.cfg.AdvertiseClientURLs
			continue
		}
		s.transport.AddPeer(m.ID, m.PeerURLs)
	}
	for _, id := range s.transport.PeerIDs() {
		if !known[id] {
			s.transport.RemovePeer(id)
		}
	}
	s.cluster.Replace(members)
	return nil
}

// installPendingDB finishes an install a crash interrupted: raft had
// persisted the snapshot at index, so the database that came with it must
// become the member's before anything is read.
func (c *Config) installPendingDB(index uint64) error {
	path := raftnode.SnapshotDBPath(c.snapDir(), index)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.Rename(path, c.dbPath()); err != nil {
		return fmt.Errorf("install database of snapshot %d: %w", index, err)
	}
	return nil
}

// The snapshot raft asks the leader to send was taken at some earlier
// index, with the configuration of that time. A member added since is not
// in that configuration, and raft refuses a snapshot that does not name
// the member restoring it, so a new member behind a compacted log could
// never catch up. The leader therefore sends its current database with
// the raft state that database holds: the index and term it has applied
// and the configuration at that index, which every membership change
// stores in the same batch as its index.

// confStateRecord is cs as stored with the entry that produced it.
func confStateRecord(cs *raftpb.ConfState) apply.Meta {
	b, _ := proto.Marshal(cs) // a ConfState of IDs always encodes
	return apply.Meta{Key: membership.ConfStateKey, Value: b}
}

// dbSnapshots gives the transport the database to send to a lagging
// member, with the raft snapshot metadata that describes it.
type dbSnapshots struct{ be *backend.Backend }

func (d dbSnapshots) OpenSnapshot() (*raftpb.SnapshotMetadata, raftnode.SnapshotDB, error) {
	snap, err := d.be.OpenSnapshot()
	if err != nil {
		return nil, nil, err
	}
	index, term := mvcc.ConsistentIndexIn(snap)
	cs := new(raftpb.ConfState)
	if b := snap.Get(backend.Meta, membership.ConfStateKey); b == nil || proto.Unmarshal(b, cs) != nil {
		// A database from before configurations were stored: raft's own
		// snapshot is the best description there is.
		return nil, snap, nil
	}
	return &raftpb.SnapshotMetadata{Index: &index, Term: &term, ConfState: cs}, snap, nil
}
