package backend

import (
	"bytes"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// Hash commits the pending batch and returns a CRC-32 (Castagnoli) of the
// whole database: every bucket's name, then its keys and values in order.
// Like etcd's Maintenance.Hash, it leaves out the meta keys that differ
// between members holding the same data (the applied index and term),
// so two members in step hash alike.
func (b *Backend) Hash() (uint32, error) {
	b.ForceCommit()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	err := b.readCommitted(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bkt *bolt.Bucket) error {
			h.Write(name)
			meta := bytes.Equal(name, Meta)
			return bkt.ForEach(func(k, v []byte) error {
				if meta && (bytes.Equal(k, metaIndexKey) || bytes.Equal(k, metaTermKey)) {
					return nil
				}
				h.Write(k)
				h.Write(v)
				return nil
			})
		})
	})
	if err != nil {
		return 0, fmt.Errorf("hash database: %w", err)
	}
	return h.Sum32(), nil
}

// The meta keys of the applied raft index and term, which mvcc writes.
var (
	metaIndexKey = []byte("consistent_index")
	metaTermKey  = []byte("term")
)
