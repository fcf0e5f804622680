package mvcc

import (
	"hash/crc32"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Hash returns a CRC-32C of the store's history up to rev (0 means the
// current revision), for members to compare: two members that applied the
// same log have the same hash. Rows a compaction has not removed yet are
// left out, so a member whose background compaction lags still agrees.
func (s *Store) Hash(rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if rev == 0 {
		rev = s.rev
	}
	if rev > s.rev {
		return 0, 0, s.compactRev, ErrFutureRev
	}
	if rev < s.compactRev {
		return 0, 0, s.compactRev, ErrCompacted
	}
	keep := s.keptAtCompaction()
	h := crc32.New(castagnoli)
	h.Write(backend.Key)
	end := revKey(Revision{Main: rev + 1}, false)
	s.be.Read(func(tx backend.ReadTx) {
		tx.ForEach(backend.Key, nil, func(k, v []byte) bool {
			if string(k) >= string(end) {
				return false
			}
			r, _ := parseRevKey(k)
			if r.Main <= s.compactRev {
				if _, ok := keep[r]; !ok {
					return true
				}
			}
			h.Write(k)
			h.Write(v)
			return true
		})
	})
	return h.Sum32(), rev, s.compactRev, nil
}

// keptAtCompaction lists the revisions at or below the compaction point
// that the compacted index still holds: each live key's change visible at
// that point.
func (s *Store) keptAtCompaction() map[Revision]struct{} {
	keep := map[Revision]struct{}{}
	if s.compactRev == 0 {
		return keep
	}
	s.index.tree.Ascend(func(ki *keyIndex) bool {
		for _, g := range ki.gens {
			for _, r := range g.revs {
				if r.Main > s.compactRev {
					break
				}
				keep[r] = struct{}{}
			}
		}
		return true
	})
	return keep
}
