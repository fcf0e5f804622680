package mvcc

import (
	"encoding/binary"
	"fmt"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

// RangeRaw reads [key, end) as Range does, but hands fn the records as
// they are stored (each a marshalled mvccpb.KeyValue) instead of decoding
// them. A caller that only re-encodes what it reads, such as a large
// answer on its way to a client, so skips holding a decoded copy of every
// value beside the encoded one. fn runs while the store and the backend
// are read-locked and the slices in vals are valid only until it returns:
// it must copy what it keeps, and be quick, as writers wait for it.
// o.Count is ignored; rev is the revision read at, count the keys in
// range before the limit (with o.Paged, at most o.Limit).
func (s *Store) RangeRaw(key, end []byte, o RangeOptions, fn func(rev, count int64, vals [][]byte) error) error {
	read, err := s.rangeRaw(key, end, o, fn)
	s.noteRead(read)
	return err
}

// rangeRaw is RangeRaw under the store's read lock; it also says how many
// bytes of records it read.
func (s *Store) rangeRaw(key, end []byte, o RangeOptions, fn func(rev, count int64, vals [][]byte) error) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rev := o.Rev
	if rev <= 0 {
		rev = s.rev
	}
	if rev > s.rev {
		return 0, ErrFutureRev
	}
	if rev < s.compactRev {
		return 0, ErrCompacted
	}
	var (
		revs  []Revision
		count int64
	)
	s.index.ascend(key, end, func(ki *keyIndex) bool {
		mod, _, _, ok := ki.at(rev)
		if !ok {
			return true
		}
		count++
		if o.Limit <= 0 || int64(len(revs)) < o.Limit {
			revs = append(revs, mod)
		}
		return !o.Paged || o.Limit <= 0 || count < o.Limit
	})
	var (
		err  error
		read int
	)
	s.be.Read(func(tx backend.ReadTx) {
		vals := make([][]byte, len(revs))
		k := revKey(Revision{}, false) // reused: Get keeps no reference to it
		keys := tx.Lookup(backend.Key)
		for i, r := range revs {
			binary.BigEndian.PutUint64(k, uint64(r.Main))
			binary.BigEndian.PutUint64(k[9:], uint64(r.Sub))
			if vals[i] = keys.Get(k); vals[i] == nil {
				err = fmt.Errorf("range: revision %d.%d is in the index but not in the database", r.Main, r.Sub)
				return
			}
			read += len(vals[i])
		}
		err = fn(s.rev, count, vals)
	})
	return read, err
}
