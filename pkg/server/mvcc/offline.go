package mvcc

import (
	"fmt"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

// What tools that work on a database file while no member has it open
// (snapshot status and restore) need to know of the store's layout.

// MetaPutter writes one record of a bucket.
type MetaPutter interface {
	Put(bucket, key, value []byte) error
}

// SetConsistentIndex records index and term as the last raft entry the
// database holds, as a restored member's raft state says.
func SetConsistentIndex(w MetaPutter, index, term uint64) error {
	if err := w.Put(backend.Meta, metaConsistentIndex, putUint(index)); err != nil {
		return err
	}
	return w.Put(backend.Meta, metaConsistentTerm, putUint(term))
}

// ScheduleCompaction records a compaction at rev as asked for but not yet
// done: the store finishes it when it opens, and its revision is at least
// rev from then on.
func ScheduleCompaction(w MetaPutter, rev int64) error {
	return w.Put(backend.Meta, metaCompactWanted, revKey(Revision{Main: rev}, false))
}

// ParseKey decodes a key of the key bucket: the revision of the change it
// holds and whether that change is a deletion.
func ParseKey(k []byte) (main int64, tombstone bool, err error) {
	if len(k) != revKeyLen && !(len(k) == revKeyLen+1 && k[revKeyLen] == 't') {
		return 0, false, fmt.Errorf("malformed revision key %x", k)
	}
	r, tomb := parseRevKey(k)
	return r.Main, tomb, nil
}
