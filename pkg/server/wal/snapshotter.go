package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrNoSnapshot means the snapshot directory holds no usable snapshot.
var ErrNoSnapshot = errors.New("wal: no snapshot")

// Snapshotter stores raft snapshots as files named term-index.snap, each a
// CRC32C followed by the encoded snapshot.
type Snapshotter struct {
	dir string
	lg  *slog.Logger
}

// NewSnapshotter returns a Snapshotter over dir.
func NewSnapshotter(dir string, lg *slog.Logger) *Snapshotter {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Snapshotter{dir: dir, lg: lg}
}

// SaveSnap writes snap durably; an empty snapshot is ignored.
func (s *Snapshotter) SaveSnap(snap *raftpb.Snapshot) error {
	if raft.IsEmptySnap(snap) {
		return nil
	}
	data, err := proto.Marshal(snap)
	if err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	b := make([]byte, 4, 4+len(data))
	binary.BigEndian.PutUint32(b, crc32.Checksum(data, crcTable))
	b = append(b, data...)
	md := snap.GetMetadata()
	path := filepath.Join(s.dir, fmt.Sprintf(snapNameFormat, md.GetTerm(), md.GetIndex()))
	tmp := path + ".tmp"
	if err := writeSynced(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("install snapshot %s: %w", path, err)
	}
	return syncDir(s.dir)
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// snapNameFormat names a snapshot file by its term and index, so that the
// names sort as the snapshots do.
const snapNameFormat = "%016x-%016x.snap"

// names lists the snapshot files, newest first.
func (s *Snapshotter) names() ([]string, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "*.snap"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	slices.Reverse(names)
	return names, nil
}

// position reads the term and index a snapshot file is named for.
func position(path string) (at Snapshot, ok bool) {
	_, err := fmt.Sscanf(filepath.Base(path), snapNameFormat, &at.Term, &at.Index)
	return at, err == nil
}

// Load returns the newest snapshot that reads back intact. A damaged file
// is renamed *.broken and the next older one tried.
func (s *Snapshotter) Load() (*raftpb.Snapshot, error) {
	return s.loadNewest(func(string) bool { return true })
}

// LoadRecorded is Load limited to the snapshots a WAL records. The
// snapshot file is saved before its WAL record, so a crash between the two
// leaves a file newer than any record: such an orphan can never be
// started from, and is removed. Older files without a record are
// snapshots whose WAL segments were released, and are kept for Purge.
func (s *Snapshotter) LoadRecorded(recorded []Snapshot) (*raftpb.Snapshot, error) {
	if err := s.removeOrphans(recorded); err != nil {
		return nil, err
	}
	return s.loadNewest(func(p string) bool {
		at, ok := position(p)
		return ok && slices.Contains(recorded, at)
	})
}

// removeOrphans deletes the snapshot files newer than every recorded one.
func (s *Snapshotter) removeOrphans(recorded []Snapshot) error {
	var newest uint64
	for _, r := range recorded {
		newest = max(newest, r.Index)
	}
	names, err := s.names()
	if err != nil {
		return err
	}
	for _, p := range names {
		if at, ok := position(p); ok && at.Index > newest {
			s.lg.Warn("removing snapshot file the WAL has no record of: the member stopped while saving it", "file", p)
			if err := os.Remove(p); err != nil {
				// Left in place it costs a second WAL read at the
				// next start, not the start itself.
				s.lg.Warn("remove orphaned snapshot", "file", p, "err", err)
			}
		}
	}
	return nil
}

// loadNewest returns the newest snapshot whose file use accepts and that
// reads back intact.
func (s *Snapshotter) loadNewest(use func(path string) bool) (*raftpb.Snapshot, error) {
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	for _, p := range names {
		if !use(p) {
			continue
		}
		snap, err := readSnap(p)
		if err == nil {
			return snap, nil
		}
		s.lg.Warn("skipping damaged snapshot", "file", p, "err", err)
		if rerr := os.Rename(p, p+".broken"); rerr != nil {
			return nil, fmt.Errorf("set aside damaged snapshot %s: %w", p, rerr)
		}
	}
	return nil, ErrNoSnapshot
}

func readSnap(path string) (*raftpb.Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 4 || crc32.Checksum(b[4:], crcTable) != binary.BigEndian.Uint32(b) {
		return nil, fmt.Errorf("%w: snapshot %s fails its checksum", ErrCorrupt, path)
	}
	snap := new(raftpb.Snapshot)
	if err := proto.Unmarshal(b[4:], snap); err != nil {
		return nil, fmt.Errorf("decode snapshot %s: %w", path, err)
	}
	return snap, nil
}

// Purge deletes all but the newest keep snapshot files.
func (s *Snapshotter) Purge(keep int) error {
	names, err := s.names()
	if err != nil {
		return err
	}
	for i, p := range names {
		if i >= keep {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("remove old snapshot %s: %w", p, err)
			}
		}
	}
	return nil
}
