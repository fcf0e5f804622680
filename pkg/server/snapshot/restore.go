package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/membership"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
	"github.com/kvd-io/kvd/pkg/server/wal"
)

// RestoreConfig says which snapshot becomes which member of which new
// cluster. The names follow etcdutl's flags.
type RestoreConfig struct {
	SnapshotPath string
	// Name is this member's name in InitialCluster.
	Name string
	// DataDir is the data dir to create; it must not exist or be empty.
	// Empty means "<Name>.kvd".
	DataDir string
	// WALDir, when set, holds the WAL instead of DataDir/member/wal, which
	// then links to it. It must not exist.
	WALDir string
	// PeerURLs are this member's, as in InitialCluster.
	PeerURLs []string
	// InitialCluster ("name=url,...") and InitialClusterToken give the new
	// cluster's members and IDs.
	InitialCluster      string
	InitialClusterToken string
	// SkipHashCheck accepts a file without its digest (a database copied
	// from a data dir), or with a wrong one.
	SkipHashCheck bool
	// RevisionBump raises the store's revision by this much and, with
	// MarkCompacted, marks everything below the new revision compacted, so
	// that watchers from before the restore cannot miss changes silently.
	RevisionBump  uint64
	MarkCompacted bool
	Logger        *slog.Logger
}

// The restored member's raft state is a snapshot at index len(members),
// term 1, whose configuration is the new members as voters, as etcdutl
// makes it: every member of the new cluster restores the same file with
// the same flags, so all start from the same log position and state.
const restoredTerm = 1

// Restore builds a data dir from which a member of a new cluster starts
// with the snapshot's keys, leases, users and roles. The file is checked
// before anything is written, and the data dir is built under a temporary
// name and renamed into place, so a refused or failed restore leaves
// nothing behind.
func Restore(cfg RestoreConfig) error {
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	if (cfg.RevisionBump == 0) == cfg.MarkCompacted {
		return errors.New("--mark-compacted required if --revision-bump > 0")
	}
	members, self, clusterID, err := newMembers(cfg)
	if err != nil {
		return err
	}
	dataDir := cfg.DataDir
	if dataDir == "" {
		dataDir = cfg.Name + ".kvd"
	}
	if !emptyOrMissing(dataDir) {
		return fmt.Errorf("data-dir %q not empty or could not be read", dataDir)
	}
	if cfg.WALDir != "" {
		if _, err := os.Lstat(cfg.WALDir); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("wal-dir %q exists", cfg.WALDir)
		}
	}
	src, err := check(cfg.SnapshotPath, cfg.SkipHashCheck, false)
	if err != nil {
		return err
	}
	lg.Info("restoring snapshot", "path", cfg.SnapshotPath, "data-dir", dataDir, "wal-dir", walDirOf(dataDir, cfg.WALDir),
		"snap-dir", filepath.Join(dataDir, "member", "snap"))

	b := &builder{cfg: cfg, lg: lg, src: src, members: members, self: self, clusterID: clusterID}
	if err := b.build(dataDir); err != nil {
		return err
	}
	lg.Info("restored snapshot", "path", cfg.SnapshotPath, "data-dir", dataDir, "wal-dir", walDirOf(dataDir, cfg.WALDir),
		"member-id", fmt.Sprintf("%x", self.ID), "cluster-id", fmt.Sprintf("%x", clusterID))
	return nil
}

func walDirOf(dataDir, walDir string) string {
	if walDir != "" {
		return walDir
	}
	return filepath.Join(dataDir, "member", "wal")
}

// newMembers parses the new cluster and finds this member in it.
func newMembers(cfg RestoreConfig) (members []*membership.Member, self *membership.Member, clusterID uint64, err error) {
	members, err = membership.ParseInitialCluster(cfg.InitialCluster, cfg.InitialClusterToken)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, m := range members {
		if m.Name == cfg.Name {
			self = m
		}
	}
	if self == nil {
		return nil, nil, 0, fmt.Errorf("--initial-cluster %q has no member named %q (--name)", cfg.InitialCluster, cfg.Name)
	}
	advertised, err := membership.ParseInitialCluster(joinAs(cfg.Name, cfg.PeerURLs), cfg.InitialClusterToken)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("--initial-advertise-peer-urls: %w", err)
	}
	if !slices.Equal(sorted(advertised[0].PeerURLs), sorted(self.PeerURLs)) {
		return nil, nil, 0, fmt.Errorf("--initial-cluster has %s=%v but --initial-advertise-peer-urls is %v", cfg.Name, self.PeerURLs, advertised[0].PeerURLs)
	}
	ids := make([]uint64, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	return members, self, membership.ClusterID(ids), nil
}

func joinAs(name string, urls []string) string {
	var b bytes.Buffer
	for i, u := range urls {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%s", name, u)
	}
	return b.String()
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func emptyOrMissing(dir string) bool {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && len(entries) == 0
}

// builder writes one restored data dir.
type builder struct {
	cfg       RestoreConfig
	lg        *slog.Logger
	src       *checked
	members   []*membership.Member
	self      *membership.Member
	clusterID uint64
}

// build writes the data dir under a temporary name beside dataDir (and the
// WAL beside WALDir), then renames them into place.
func (b *builder) build(dataDir string) (err error) {
	parent := filepath.Dir(filepath.Clean(dataDir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dataDir)+".restoring-")
	if err != nil {
		return fmt.Errorf("create temporary data dir: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	memberDir := filepath.Join(tmp, "member")
	snapDir := filepath.Join(memberDir, "snap")
	if err := os.MkdirAll(snapDir, 0o700); err != nil {
		return err
	}
	dbPath := filepath.Join(snapDir, "db")
	if err := b.copyDB(dbPath); err != nil {
		return err
	}
	index := uint64(len(b.members))
	if err := b.rewriteDB(dbPath, index); err != nil {
		return err
	}
	walTmp := filepath.Join(memberDir, "wal")
	if b.cfg.WALDir != "" {
		walParent := filepath.Dir(filepath.Clean(b.cfg.WALDir))
		if err := os.MkdirAll(walParent, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", walParent, err)
		}
		if walTmp, err = os.MkdirTemp(walParent, "."+filepath.Base(b.cfg.WALDir)+".restoring-"); err != nil {
			return fmt.Errorf("create temporary wal dir: %w", err)
		}
		defer func() {
			if err != nil {
				os.RemoveAll(walTmp)
			}
		}()
	}
	if err := b.writeRaftState(walTmp, snapDir, index); err != nil {
		return err
	}
	if b.cfg.WALDir != "" {
		if err := b.placeWAL(walTmp, memberDir); err != nil {
			return err
		}
	}
	if err := syncDir(memberDir); err != nil {
		return err
	}
	// An empty data dir given by the caller makes way for the new one.
	if err := os.Remove(dataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replace empty data-dir %s: %w", dataDir, err)
	}
	if err := os.Rename(tmp, dataDir); err != nil {
		return fmt.Errorf("move restored data into %s: %w", dataDir, err)
	}
	return syncDir(parent)
}

// placeWAL moves the WAL to --wal-dir and links the member's wal folder to
// it, which is where the member looks.
func (b *builder) placeWAL(walTmp, memberDir string) error {
	abs, err := filepath.Abs(b.cfg.WALDir)
	if err != nil {
		return err
	}
	if err := os.Rename(walTmp, abs); err != nil {
		return fmt.Errorf("move wal into %s: %w", abs, err)
	}
	if err := os.Symlink(abs, filepath.Join(memberDir, "wal")); err != nil {
		os.RemoveAll(abs)
		return fmt.Errorf("link wal dir: %w", err)
	}
	return nil
}

// copyDB copies the database part of the snapshot, without its digest,
// and makes it durable.
func (b *builder) copyDB(dst string) error {
	in, err := os.Open(b.src.path)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(in, 0, b.src.dbSize)); err != nil {
		out.Close()
		return fmt.Errorf("copy database to %s: %w", dst, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("sync %s: %w", dst, err)
	}
	return out.Close()
}

// rewriteDB makes the copied database the new cluster's: its structure is
// checked, the members are the new ones, the raft position is index at
// the restored term with the new configuration, and raft-log records of
// the old cluster are dropped. Keys, leases, users and roles stay as they
// are.
func (b *builder) rewriteDB(path string, index uint64) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("open restored database: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := checkStructure(tx); err != nil {
			return fmt.Errorf("snapshot %s: %w", b.src.path, err)
		}
		w := boltWriter{tx}
		if err := b.writeMembers(tx, w); err != nil {
			return err
		}
		if err := mvcc.SetConsistentIndex(w, index, restoredTerm); err != nil {
			return err
		}
		cs, err := proto.Marshal(b.confState())
		if err != nil {
			return err
		}
		if err := w.Put(backend.Meta, membership.ConfStateKey, cs); err != nil {
			return err
		}
		if err := dropPrefix(tx, backend.Meta, membership.RefusedConfChangePrefix); err != nil {
			return err
		}
		if b.cfg.RevisionBump > 0 {
			return b.bumpRevision(tx, w)
		}
		return nil
	})
	return errors.Join(err, db.Close())
}

// writeMembers replaces the old cluster's members (kvd's or etcd's, and
// etcd's removed members) with the new ones.
func (b *builder) writeMembers(tx *bolt.Tx, w boltWriter) error {
	for _, name := range [][]byte{backend.Members, []byte("members_removed")} {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return fmt.Errorf("clear bucket %s: %w", name, err)
			}
		}
	}
	for _, m := range b.members {
		v, err := m.Marshal()
		if err != nil {
			return err
		}
		if err := w.Put(backend.Members, membership.DBKey(m.ID), v); err != nil {
			return err
		}
		b.lg.Info("added member", "cluster-id", fmt.Sprintf("%x", b.clusterID), "member-id", fmt.Sprintf("%x", m.ID),
			"name", m.Name, "peer-urls", m.PeerURLs)
	}
	return nil
}

func (b *builder) confState() *raftpb.ConfState {
	cs := &raftpb.ConfState{}
	for _, m := range b.members {
		cs.Voters = append(cs.Voters, m.ID)
	}
	return cs
}

// bumpRevision raises the revision past the newest stored one and
// schedules a compaction there, which the member finishes as it opens.
func (b *builder) bumpRevision(tx *bolt.Tx, w boltWriter) error {
	var latest int64
	if kb := tx.Bucket(backend.Key); kb != nil {
		if k, _ := kb.Cursor().Last(); k != nil {
			var err error
			if latest, _, err = mvcc.ParseKey(k); err != nil {
				return err
			}
		}
	}
	rev := latest + int64(b.cfg.RevisionBump)
	b.lg.Info("bumping latest revision", "latest-revision", latest, "bump-amount", b.cfg.RevisionBump, "new-latest-revision", rev)
	b.lg.Info("marking revision compacted", "revision", rev)
	return mvcc.ScheduleCompaction(w, rev)
}

func dropPrefix(tx *bolt.Tx, bucket, prefix []byte) error {
	bk := tx.Bucket(bucket)
	if bk == nil {
		return nil
	}
	c := bk.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// boltWriter puts records into a bbolt transaction, creating buckets as
// needed.
type boltWriter struct{ tx *bolt.Tx }

func (w boltWriter) Put(bucket, key, value []byte) error {
	bk, err := w.tx.CreateBucketIfNotExists(bucket)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return bk.Put(key, value)
}

// writeRaftState creates the WAL, named for this member and the new
// cluster, holding the hard state at index and a snapshot marker there,
// and the raft snapshot file the member loads on start.
func (b *builder) writeRaftState(walDir, snapDir string, index uint64) error {
	w, err := wal.Create(walDir, membership.WALMetadata(b.self.ID, b.clusterID), nil)
	if err != nil {
		return err
	}
	term := uint64(restoredTerm)
	hs := &raftpb.HardState{Term: &term, Commit: &index}
	err = errors.Join(w.Save(hs, nil), w.SaveSnapshot(wal.Snapshot{Index: index, Term: term}))
	if err = errors.Join(err, w.Close()); err != nil {
		return fmt.Errorf("write wal: %w", err)
	}
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: &index, Term: &term, ConfState: b.confState()}}
	if err := wal.NewSnapshotter(snapDir, nil).SaveSnap(snap); err != nil {
		return fmt.Errorf("write raft snapshot: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
