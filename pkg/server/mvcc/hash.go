package mvcc

import (
	"hash"
	"hash/crc32"
	"slices"
	"sync"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

// Hashes follow etcd's HashKV to the bit, so that kvd members agree with
// each other and with the etcd a database came from: a CRC-32C over the
// name of the key bucket and the stored rows up to a revision, leaving out
// rows at or below the compaction point that are no longer the latest
// change of their key (a compaction still removing them must not change
// the answer), and a deletion recorded at the compaction point.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// KeyValueHash is a hash of the key space up to Rev, made when the last
// compaction was at CompactRev (-1 for none).
type KeyValueHash struct {
	Hash            uint32
	CompactRev, Rev int64
}

// hasher hashes rows fed to it in key order.
type hasher struct {
	h               hash.Hash32
	compactRev, rev int64
	// keep is what may be hashed at or below compactRev; etcd filters
	// those rows only when it keeps something, and so must we.
	keep   map[Revision]struct{}
	filter bool
}

func newHasher(compactRev, rev int64, keep map[Revision]struct{}) *hasher {
	h := &hasher{h: crc32.New(castagnoli), compactRev: compactRev, rev: rev, keep: keep, filter: len(keep) > 0}
	h.h.Write(backend.Key)
	return h
}

func (h *hasher) write(k, v []byte) {
	r, tomb := parseRevKey(k)
	if r.Main > h.rev {
		return
	}
	if r.Main <= h.compactRev {
		if _, ok := h.keep[r]; !ok && h.filter {
			return
		}
		if tomb && r.Main == h.compactRev {
			return
		}
	}
	h.h.Write(k)
	h.h.Write(v)
}

func (h *hasher) sum() KeyValueHash {
	return KeyValueHash{Hash: h.h.Sum32(), CompactRev: h.compactRev, Rev: h.rev}
}

// hashHistory keeps the hashes the latest compactions made on their way,
// which HashKV at those revisions answers, as etcd's does.
type hashHistory struct {
	mu   sync.Mutex
	list []KeyValueHash // by revision
}

const hashHistoryLen = 10

func (hh *hashHistory) add(h KeyValueHash) {
	hh.mu.Lock()
	defer hh.mu.Unlock()
	hh.list = append(hh.list, h)
	slices.SortFunc(hh.list, func(a, b KeyValueHash) int { return int(a.Rev - b.Rev) })
	if len(hh.list) > hashHistoryLen {
		hh.list = hh.list[len(hh.list)-hashHistoryLen:]
	}
}

func (hh *hashHistory) at(rev int64) (KeyValueHash, bool) {
	hh.mu.Lock()
	defer hh.mu.Unlock()
	for _, h := range hh.list {
		if h.Rev == rev {
			return h, true
		}
	}
	return KeyValueHash{}, false
}

// Hash returns the hash of the store's history up to rev (0 means the
// current revision), the revision hashed and the compaction revision the
// hash was made under (-1 before any compaction).
func (s *Store) Hash(rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// A compaction's hash answers for its revision before anything else
	// is checked, as in etcd: even once a later compaction made that
	// revision unreadable, and for 0 after a compaction to 0.
	if kh, ok := s.hashes.at(rev); ok {
		return kh.Hash, rev, kh.CompactRev, nil
	}
	if rev > s.rev {
		return 0, 0, s.compactRev, ErrFutureRev
	}
	if rev > 0 && rev < s.compactRev {
		return 0, 0, s.compactRev, ErrCompacted
	}
	if rev == 0 {
		rev = s.rev
	}
	h := newHasher(s.compactRev, rev, s.index.latestAt(rev))
	end := revKey(Revision{Main: rev + 1}, false)
	s.be.Read(func(tx backend.ReadTx) {
		tx.ForEach(backend.Key, nil, func(k, v []byte) bool {
			if string(k) >= string(end) {
				return false
			}
			h.write(k, v)
			return true
		})
	})
	return h.h.Sum32(), rev, s.compactRev, nil
}

// hashesTombstoneAt tells whether a deletion is stored at revision rev:
// etcd's compaction keeps such a row, so its hash filters older rows even
// when nothing else is kept.
func (s *Store) hashesTombstoneAt(rev int64) bool {
	found := false
	end := revKey(Revision{Main: rev + 1}, false)
	s.be.Read(func(tx backend.ReadTx) {
		tx.ForEach(backend.Key, revKey(Revision{Main: rev}, false), func(k, _ []byte) bool {
			if string(k) >= string(end) {
				return false
			}
			_, found = parseRevKey(k)
			return !found
		})
	})
	return found
}

// latestAt lists, for every key alive at rev, the revision of its change
// visible at rev: what etcd's hash keeps of the history a compaction
// frees. A key deleted at or before rev contributes nothing.
func (t *treeIndex) latestAt(rev int64) map[Revision]struct{} {
	keep := map[Revision]struct{}{}
	t.each(func(ki *keyIndex) bool {
		if r, ok := ki.latestAt(rev); ok {
			keep[r] = struct{}{}
		}
		return true
	})
	return keep
}

// latestAt finds the key's last change at or before rev in the life that
// spans rev, or, if none does, in the first life that began after it; a
// deletion does not count.
func (ki *keyIndex) latestAt(rev int64) (Revision, bool) {
	if len(ki.gens) == 0 {
		return Revision{}, false
	}
	i := 0
	for i < len(ki.gens)-1 && ki.gens[i].revs[len(ki.gens[i].revs)-1].Main < rev {
		i++
	}
	g := ki.gens[i]
	for j := len(g.revs) - 1; j >= 0; j-- {
		if g.revs[j].Main <= rev {
			isTombstone := j == len(g.revs)-1 && i < len(ki.gens)-1
			return g.revs[j], !isTombstone
		}
	}
	return Revision{}, false
}
