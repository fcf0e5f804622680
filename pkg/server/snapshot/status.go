package snapshot

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// Status is what a snapshot file holds, in etcdutl's terms and JSON
// names.
type Status struct {
	// Hash is a CRC-32C over every bucket's name and records, in order:
	// etcdutl computes the same one over the same file.
	Hash uint32 `json:"hash"`
	// Revision is the newest revision stored.
	Revision int64 `json:"revision"`
	// TotalKey counts the keys alive at Revision.
	TotalKey int `json:"totalKey"`
	// TotalSize is the database's size in bytes.
	TotalSize int64 `json:"totalSize"`
	// Version is the storage version the file records, or "".
	Version string `json:"version"`
}

var storageVersionKey = []byte("storageVersion")

// StatusOf reads the snapshot or database file at path. A trailing digest
// is checked; a file without one (a database copied from a data dir) is
// read as it is.
func StatusOf(path string) (Status, error) {
	if _, err := check(path, false, true); err != nil {
		return Status{}, err
	}
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		return Status{}, fmt.Errorf("open database %s: %w", path, err)
	}
	defer db.Close()
	var st Status
	err = db.View(func(tx *bolt.Tx) error {
		if err := checkStructure(tx); err != nil {
			return err
		}
		st.TotalSize = tx.Size()
		if b := tx.Bucket(backend.Meta); b != nil {
			st.Version = string(b.Get(storageVersionKey))
		}
		h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
		alive := map[string]struct{}{}
		defer func() { st.Hash = h.Sum32() }()
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			h.Write(name)
			isKey := bytes.Equal(name, backend.Key)
			return b.ForEach(func(k, v []byte) error {
				h.Write(k)
				h.Write(v)
				if !isKey {
					return nil
				}
				rev, tomb, err := mvcc.ParseKey(k)
				if err != nil {
					return err
				}
				st.Revision = rev
				kv := new(mvccpb.KeyValue)
				if err := proto.Unmarshal(v, kv); err != nil {
					return fmt.Errorf("decode key at revision %d: %w", rev, err)
				}
				if tomb {
					delete(alive, string(kv.Key))
				} else {
					alive[string(kv.Key)] = struct{}{}
				}
				st.TotalKey = len(alive)
				return nil
			})
		})
	})
	if err != nil {
		return Status{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	return st, nil
}

// checkStructure walks every page the database refers to, as bbolt's own
// consistency check does, so that a damaged file is refused whole.
func checkStructure(tx *bolt.Tx) error {
	var errs []string
	for err := range tx.Check() {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("database integrity check failed with %d errors: %s", len(errs), strings.Join(errs, "; "))
	}
	return nil
}
