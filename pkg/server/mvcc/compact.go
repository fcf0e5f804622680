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
	if err := t.tx.Put(backend.Meta, metaCompactWanted, putUint(uint64(rev))); err != nil {
		return nil, err
	}
	s.compactRev = rev
	keep := s.index.compact(rev)
	done := make(chan struct{})
	s.startPhysicalCompaction(rev, keep, done)
	return done, nil
}

func (s *Store) startPhysicalCompaction(rev int64, keep map[Revision]struct{}, done chan struct{}) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		s.removeBelow(rev, keep)
	}()
}

// removeBelow deletes the database rows at or below rev that the index no
// longer needs, a batch at a time, then records the compaction as done.
func (s *Store) removeBelow(rev int64, keep map[Revision]struct{}) {
	end := revKey(Revision{Main: rev + 1}, false)
	var from []byte
	for {
		select {
		case <-s.stopc:
			return // finished at the next start, from scheduledCompactRev
		default:
		}
		var doomed [][]byte
		var next []byte
		s.be.Read(func(tx backend.ReadTx) {
			tx.ForEach(backend.Key, from, func(k, _ []byte) bool {
				if string(k) >= string(end) {
					return false
				}
				if len(doomed) == compactBatch {
					next = append([]byte(nil), k...)
					return false
				}
				r, _ := parseRevKey(k)
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
				return tx.Put(backend.Meta, metaCompactDone, putUint(uint64(rev)))
			}
			return nil
		})
		if err != nil {
			s.lg.Error("physical compaction", "rev", rev, "err", err)
			return
		}
		if next == nil {
			return
		}
		from = next
	}
}
