package mvcc

import (
	"github.com/kvd-io/kvd/pkg/server/backend"
)

// compactBatch bounds how many revisions one database write removes, so
// physical compaction never holds the batch transaction for long.
const compactBatch = 1000

// Compact makes revisions below rev unreadable and frees them. It must
// run inside a write txn of the applier (t), so the compaction is recorded
// atomically with the entry that asked for it. The index drops history at
// once; the database rows go in the background, and the returned channel
// closes when they are gone.
func (t *TxnWrite) Compact(rev int64) (<-chan struct{}, error) {
	s := t.s
	if rev <= s.compactRev {
		return nil, ErrCompacted
	}
	if rev > t.Rev() {
		return nil, ErrFutureRev
	}
	if err := t.tx.Put(backend.Meta, metaCompactWanted, revKey(Revision{Main: rev}, false)); err != nil {
		return nil, err
	}
	// As in etcd, the hash of what a compaction removes is worth keeping
	// only when it covers everything since the previous compaction.
	var h *hasher
	if s.compacting.Load() == 0 {
		h = newHasher(s.compactRev, rev, nil) // keeps what removeBelow keeps
	}
	s.compactRev = rev
	keep := s.index.compact(rev)
	done := make(chan struct{})
	s.startPhysicalCompaction(rev, keep, h, done)
	return done, nil
}

// startPhysicalCompaction removes the rows a compaction to rev freed in
// the background; h, when set, hashes them on the way, as etcd does.
func (s *Store) startPhysicalCompaction(rev int64, keep map[Revision]struct{}, h *hasher, done chan struct{}) {
	s.wg.Add(1)
	s.compacting.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		defer s.compacting.Add(-1)
		if s.removeBelow(rev, keep, h) && h != nil {
			s.hashes.add(h.sum())
		}
	}()
}

// removeBelow deletes the database rows at or below rev that the index no
// longer needs, a batch at a time, then records the compaction as done,
// which it reports. h, when set, hashes every row it goes over.
func (s *Store) removeBelow(rev int64, keep map[Revision]struct{}, h *hasher) bool {
	if h != nil {
		h.keep, h.filter = keep, len(keep) > 0 || s.hashesTombstoneAt(rev)
	}
	end := revKey(Revision{Main: rev + 1}, false)
	var from []byte
	for {
		select {
		case <-s.stopc:
			return false // finished at the next start, from scheduledCompactRev
		default:
		}
		var doomed [][]byte
		var next []byte
		s.be.Read(func(tx backend.ReadTx) {
			tx.ForEach(backend.Key, from, func(k, v []byte) bool {
				if string(k) >= string(end) {
					return false
				}
				if len(doomed) == compactBatch {
					next = append([]byte(nil), k...)
					return false
				}
				r, _ := parseRevKey(k)
				if h != nil {
					h.write(k, v)
				}
				if _, kept := keep[r]; !kept {
					doomed = append(doomed, append([]byte(nil), k...))
				}
				return true
			})
		})
		err := s.be.Write(func(tx backend.WriteTx) error {
			for _, k := range doomed {
				if err := tx.Delete(backend.Key, k); err != nil {
					return err
				}
			}
			if next == nil {
				return tx.Put(backend.Meta, metaCompactDone, revKey(Revision{Main: rev}, false))
			}
			return nil
		})
		if err != nil {
			s.lg.Error("physical compaction", "rev", rev, "err", err)
			return false
		}
		if next == nil {
			return true
		}
		from = next
	}
}
