package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/membership"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
	"github.com/kvd-io/kvd/pkg/server/wal"
)

// makeDB writes a small database as a member would have it: keys at
// revisions 2..n+1, an old member, a refused conf change record.
func makeDB(t *testing.T, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		w := boltWriter{tx}
		for i := range n {
			k := binary.BigEndian.AppendUint64(nil, uint64(i+2))
			k = append(k, '_')
			k = binary.BigEndian.AppendUint64(k, 0)
			v, _ := proto.Marshal(&mvccpb.KeyValue{Key: []byte{'k', byte('a' + i%26)}, Value: []byte("value"), CreateRevision: int64(i + 2), ModRevision: int64(i + 2), Version: 1})
			if err := w.Put(backend.Key, k, v); err != nil {
				return err
			}
		}
		old, _ := (&membership.Member{ID: 42, Name: "old", PeerURLs: []string{"http://old:2380"}}).Marshal()
		if err := w.Put(backend.Members, membership.DBKey(42), old); err != nil {
			return err
		}
		if err := w.Put(backend.Meta, append(bytes.Clone(membership.RefusedConfChangePrefix), 0, 0, 0, 0, 0, 0, 0, 9), []byte{1}); err != nil {
			return err
		}
		return mvcc.SetConsistentIndex(w, 5000, 7)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func withDigest(db []byte) []byte {
	sum := sha256.Sum256(db)
	return append(bytes.Clone(db), sum[:]...)
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	db := makeDB(t, 40)
	good := withDigest(db)
	changed := bytes.Clone(good)
	changed[bytes.Index(changed, []byte("value"))] = 'V'
	cases := []struct {
		name                  string
		file                  []byte
		skipHash, allowNoHash bool
		want                  string // "" for accepted
	}{
		{"snapshot", good, false, false, ""},
		{"changed value", changed, false, false, "SHA-256 of the database is"},
		{"changed value, check skipped", changed, true, false, ""},
		{"cut at a digest's offset", good[:4096+32], false, false, "corrupted or truncated"},
		{"cut anywhere", good[:len(good)-1000], false, false, "truncated"},
		{"database without digest", db, false, false, ErrNoHash.Error()},
		{"database without digest, allowed", db, false, true, ""},
		{"database cut, check skipped", db[:8192], true, false, "database is truncated"},
		{"not a database", withDigest(make([]byte, 8192)), false, false, "no valid meta page"},
		{"too short", withDigest(make([]byte, 512)), false, false, "too short"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := check(writeFile(t, tc.file), tc.skipHash, tc.allowNoHash)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	st, err := StatusOf(writeFile(t, withDigest(makeDB(t, 40))))
	if err != nil {
		t.Fatal(err)
	}
	// 40 revisions over 26 distinct keys.
	if st.Revision != 41 || st.TotalKey != 26 || st.Hash == 0 || st.TotalSize == 0 {
		t.Fatalf("status %+v", st)
	}
}

func restoreConfig(t *testing.T, file, name string) RestoreConfig {
	return RestoreConfig{
		SnapshotPath:        file,
		Name:                name,
		DataDir:             filepath.Join(t.TempDir(), name),
		PeerURLs:            []string{"http://10.0.0." + name[1:] + ":2380"},
		InitialCluster:      "m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380,m3=http://10.0.0.3:2380",
		InitialClusterToken: "new-token",
	}
}

// TestRestoreWritesRaftState checks the data dir a member restarts from:
// the WAL names the member and the new cluster, raft's snapshot and hard
// state sit at index 3 (three members) with them as voters, and the
// database agrees: the new members alone, the consistent index 3 at term
// 1, the conf state, no record of the old log, every key kept.
func TestRestoreWritesRaftState(t *testing.T) {
	file := writeFile(t, withDigest(makeDB(t, 40)))
	cfg := restoreConfig(t, file, "m2")
	if err := Restore(cfg); err != nil {
		t.Fatal(err)
	}
	members, err := membership.ParseInitialCluster(cfg.InitialCluster, cfg.InitialClusterToken)
	if err != nil {
		t.Fatal(err)
	}
	ids := []uint64{members[0].ID, members[1].ID, members[2].ID}
	clusterID := membership.ClusterID(ids)

	snapDir := filepath.Join(cfg.DataDir, "member", "snap")
	snap, err := wal.NewSnapshotter(snapDir, nil).Load()
	if err != nil {
		t.Fatal(err)
	}
	if md := snap.GetMetadata(); md.GetIndex() != 3 || md.GetTerm() != 1 || len(md.GetConfState().GetVoters()) != 3 {
		t.Fatalf("raft snapshot %v", md)
	}
	w, err := wal.Open(filepath.Join(cfg.DataDir, "member", "wal"), wal.Snapshot{Index: 3, Term: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	meta, hs, ents, err := w.ReadAll()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if id, cid, err := membership.ParseWALMetadata(meta); err != nil || id != members[1].ID || cid != clusterID {
		t.Fatalf("wal names member %x of cluster %x (%v), want %x of %x", id, cid, err, members[1].ID, clusterID)
	}
	if hs.GetCommit() != 3 || hs.GetTerm() != 1 || len(ents) != 0 {
		t.Fatalf("hard state %v, %d entries", hs, len(ents))
	}

	db, err := bolt.Open(filepath.Join(snapDir, "db"), 0o400, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if index, term := mvcc.ConsistentIndexIn(boltGetter{tx}); index != 3 || term != 1 {
			t.Errorf("consistent index %d term %d, want 3 and 1", index, term)
		}
		cs := new(raftpb.ConfState)
		if err := proto.Unmarshal(tx.Bucket(backend.Meta).Get(membership.ConfStateKey), cs); err != nil || len(cs.GetVoters()) != 3 {
			t.Errorf("conf state %v (%v)", cs, err)
		}
		var stored []uint64
		_ = tx.Bucket(backend.Members).ForEach(func(k, _ []byte) error {
			stored = append(stored, binary.BigEndian.Uint64(k))
			return nil
		})
		if len(stored) != 3 || tx.Bucket(backend.Members).Get(membership.DBKey(42)) != nil {
			t.Errorf("members bucket holds %x", stored)
		}
		if k, _ := tx.Bucket(backend.Meta).Cursor().Seek(membership.RefusedConfChangePrefix); bytes.HasPrefix(k, membership.RefusedConfChangePrefix) {
			t.Errorf("old log's record %q kept", k)
		}
		if n := tx.Bucket(backend.Key).Stats().KeyN; n != 40 {
			t.Errorf("%d key records, want 40", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRestoreWALDir: with --wal-dir the WAL lives there, and the member's
// wal folder, where kvd looks, links to it; an existing --wal-dir is
// refused before anything is written.
func TestRestoreWALDir(t *testing.T) {
	file := writeFile(t, withDigest(makeDB(t, 5)))
	cfg := restoreConfig(t, file, "m1")
	cfg.WALDir = filepath.Join(t.TempDir(), "wal")
	if err := Restore(cfg); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(cfg.DataDir, "member", "wal")
	if target, err := os.Readlink(link); err != nil || target != cfg.WALDir {
		t.Fatalf("%s links to %q (%v), want %s", link, target, err, cfg.WALDir)
	}
	w, err := wal.Open(link, wal.Snapshot{Index: 3, Term: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, hs, _, err := w.ReadAll(); err != nil || hs.GetCommit() != 3 {
		t.Fatalf("wal through the link: hard state %v, %v", hs, err)
	}
	w.Close()

	again := restoreConfig(t, file, "m1")
	again.WALDir = cfg.WALDir
	if err := Restore(again); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("restore into an existing --wal-dir: %v", err)
	}
	if _, err := os.Stat(again.DataDir); !os.IsNotExist(err) {
		t.Fatalf("refused restore created %s: %v", again.DataDir, err)
	}
}

type boltGetter struct{ tx *bolt.Tx }

func (g boltGetter) Get(bucket, key []byte) []byte { return g.tx.Bucket(bucket).Get(key) }

// TestRestoreRefusals: bad flags, a data dir in use, a member not in the
// cluster and a damaged file are refused, and nothing is left behind.
func TestRestoreRefusals(t *testing.T) {
	good := writeFile(t, withDigest(makeDB(t, 10)))
	bad := writeFile(t, withDigest(makeDB(t, 10))[:5000])
	cases := []struct {
		name string
		edit func(*RestoreConfig)
		want string
	}{
		{"bump without mark", func(c *RestoreConfig) { c.RevisionBump = 5 }, "--mark-compacted required"},
		{"mark without bump", func(c *RestoreConfig) { c.MarkCompacted = true }, "--mark-compacted required"},
		{"unknown name", func(c *RestoreConfig) { c.Name = "m9" }, "no member named"},
		{"peer URLs differ", func(c *RestoreConfig) { c.PeerURLs = []string{"http://10.0.0.9:2380"} }, "--initial-advertise-peer-urls"},
		{"data dir in use", func(c *RestoreConfig) {
			if err := os.MkdirAll(filepath.Join(c.DataDir, "member"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not empty"},
		{"damaged file", func(c *RestoreConfig) { c.SnapshotPath = bad }, "truncated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := restoreConfig(t, good, "m1")
			tc.edit(&cfg)
			before, _ := os.ReadDir(filepath.Dir(cfg.DataDir))
			err := Restore(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			after, _ := os.ReadDir(filepath.Dir(cfg.DataDir))
			if len(after) != len(before) {
				t.Fatalf("restore left %v (had %v)", after, before)
			}
		})
	}
	cfg := restoreConfig(t, good, "m1")
	if err := Restore(cfg); err != nil {
		t.Fatalf("the undamaged file: %v", err)
	}
	if err := Restore(cfg); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a second restore into the same dir: %v", err)
	}
}
