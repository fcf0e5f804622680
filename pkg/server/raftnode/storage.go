package raftnode

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/kvd-io/kvd/pkg/server/wal"
)

// Restored is what a member finds on disk when it starts.
type Restored struct {
	// Metadata is what the WAL was created with (member and cluster IDs).
	Metadata []byte
	// Snapshot is the newest raft snapshot, or nil.
	Snapshot *raftpb.Snapshot
	// HardState is the last persisted raft hard state.
	HardState *raftpb.HardState
	// Fresh reports that no WAL existed and a new one was created.
	Fresh bool
}

// disk is the durable half of a member's raft state: WAL and snapshot files.
type disk struct {
	wal   *wal.WAL
	snaps *wal.Snapshotter
}

// WALExists reports whether dir already holds a member's raft log, which is
// how a restarted member knows to ignore its bootstrap flags.
func WALExists(dir string) bool { return wal.Exist(filepath.Join(dir, "wal")) }

// DiscardUnstarted removes the WAL under dir when it holds no raft state
// at all: no snapshot, an empty hard state and no entry. A member leaves
// such a WAL when it stops after creating it but before raft persisted
// its first Ready; restarting from it, raft would know of no voter and the
// member would never elect or follow anyone. Nothing in it was ever
// promised to a peer, so the member may bootstrap again from its flags.
// It reports whether it removed the WAL.
func DiscardUnstarted(dir string, lg *slog.Logger) (bool, error) {
	walDir := filepath.Join(dir, "wal")
	if !wal.Exist(walDir) {
		return false, nil
	}
	if has, err := wal.HasState(walDir); err != nil || has {
		return false, err
	}
	if _, err := wal.NewSnapshotter(filepath.Join(dir, "snap"), lg).Load(); !errors.Is(err, wal.ErrNoSnapshot) {
		return false, nil // a snapshot, or a snapshot dir to look at more closely: keep it
	}
	if err := os.RemoveAll(walDir); err != nil {
		return false, fmt.Errorf("remove unstarted wal %s: %w", walDir, err)
	}
	return true, nil
}

// openDisk creates or reopens the WAL and snapshot directory under dir and
// fills storage with what they hold.
func openDisk(dir string, metadata []byte, storage *raft.MemoryStorage, lg *slog.Logger) (*disk, *Restored, error) {
	walDir := filepath.Join(dir, "wal")
	snapDir := filepath.Join(dir, "snap")
	if err := os.MkdirAll(snapDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create snapshot dir %s: %w", snapDir, err)
	}
	snaps := wal.NewSnapshotter(snapDir, lg)
	if !wal.Exist(walDir) {
		w, err := wal.Create(walDir, metadata, lg)
		if err != nil {
			return nil, nil, fmt.Errorf("create wal: %w", err)
		}
		return &disk{wal: w, snaps: snaps}, &Restored{Metadata: metadata, Fresh: true}, nil
	}

	snap, err := snaps.Load()
	if err != nil && !errors.Is(err, wal.ErrNoSnapshot) {
		return nil, nil, fmt.Errorf("load snapshot: %w", err)
	}
	w, meta, hs, ents, err := readWAL(walDir, snap, lg)
	var missing *wal.SnapshotNotFoundError
	if errors.As(err, &missing) {
		// The newest snapshot file lacks its WAL record: the member
		// died between saving the two. Start from the newest snapshot
		// the WAL does record; its entries since are all still there.
		if snap, err = snaps.LoadRecorded(missing.Recorded); err != nil && !errors.Is(err, wal.ErrNoSnapshot) {
			return nil, nil, fmt.Errorf("load snapshot: %w", err)
		}
		w, meta, hs, ents, err = readWAL(walDir, snap, lg)
	}
	if err != nil {
		return nil, nil, err
	}
	if snap != nil {
		if err := storage.ApplySnapshot(snap); err != nil {
			w.Close()
			return nil, nil, fmt.Errorf("restore snapshot at %d: %w", snap.GetMetadata().GetIndex(), err)
		}
	}
	if hs != nil {
		if err := storage.SetHardState(hs); err != nil {
			w.Close()
			return nil, nil, fmt.Errorf("restore hard state: %w", err)
		}
	}
	if err := storage.Append(ents); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("restore %d wal entries: %w", len(ents), err)
	}
	return &disk{wal: w, snaps: snaps}, &Restored{Metadata: meta, Snapshot: snap, HardState: hs}, nil
}

func (d *disk) close() error { return d.wal.Close() }

// saveSnapshot writes snap's file, then its record in the WAL. The order
// matters: a WAL record always has its file, and start-up handles a file
// left without a record (see openDisk).
func (d *disk) saveSnapshot(snap *raftpb.Snapshot) error {
	at := snapshotAt(snap)
	if err := d.snaps.SaveSnap(snap); err != nil {
		return fmt.Errorf("save snapshot at %d: %w", at.Index, err)
	}
	if err := d.wal.SaveSnapshot(at); err != nil {
		return fmt.Errorf("record snapshot %d in wal: %w", at.Index, err)
	}
	return nil
}

// readWAL opens the WAL in dir at snap (nil for none) and reads it all.
func readWAL(dir string, snap *raftpb.Snapshot, lg *slog.Logger) (*wal.WAL, []byte, *raftpb.HardState, []*raftpb.Entry, error) {
	w, err := wal.Open(dir, snapshotAt(snap), lg)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("open wal: %w", err)
	}
	meta, hs, ents, err := w.ReadAll()
	if err != nil {
		w.Close()
		return nil, nil, nil, nil, fmt.Errorf("read wal: %w", err)
	}
	return w, meta, hs, ents, nil
}

func snapshotAt(snap *raftpb.Snapshot) wal.Snapshot {
	if snap == nil {
		return wal.Snapshot{}
	}
	return wal.Snapshot{Index: snap.GetMetadata().GetIndex(), Term: snap.GetMetadata().GetTerm()}
}
