// Package mvcc is kvd's multi-version key-value store: every change gets a
// revision, old revisions stay readable until compacted, and each key
// carries its create revision, mod revision, version and lease.
//
// Values live in the backend keyed by revision; an in-memory B-tree maps
// each key to its history, so a read finds the revision it needs without
// scanning the database.
package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

var (
	// ErrCompacted is returned for a revision below the compaction point.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev is returned for a revision the store has not reached.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
)

var (
	metaConsistentIndex = []byte("consistent_index")
	metaConsistentTerm  = []byte("term")
	metaCompactDone     = []byte("finishedCompactRev")
	metaCompactWanted   = []byte("scheduledCompactRev")
)

// Store is the versioned key space.
type Store struct {
	be *backend.Backend
	lg *slog.Logger

	// mu guards the index and revisions: a write txn holds it for its
	// whole life, readers share it.
	mu         sync.RWMutex
	index      *treeIndex
	rev        int64
	compactRev int64

	// ci and term are the last applied raft entry's. They reach the
	// database once per batch, just before it commits (saveApplied):
	// ciUnsaved says they changed since. Both are written with the
	// backend's writer lock held, as saveApplied runs.
	ci, term  uint64
	ciUnsaved bool

	// observer hears of every committed write txn: its revision and its
	// changes. Set once, before writes start (see NewWatchable).
	observer func(rev int64, changes []*mvccpb.KeyValue)

	wg         sync.WaitGroup // background compactions
	compacting atomic.Int32   // how many of them are running
	hashes     hashHistory    // of the latest compactions
	stopc      chan struct{}
}

// New opens the store over be, rebuilding the key index from it and
// finishing a compaction a crash interrupted.
func New(be *backend.Backend, lg *slog.Logger) (*Store, error) {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	s := &Store{be: be, lg: lg, stopc: make(chan struct{})}
	if err := s.load(); err != nil {
		return nil, err
	}
	be.SetPreCommit(s.saveApplied)
	return s, nil
}

// Restore replaces the store's whole content: background compactions
// stop, replace swaps the backend's file (a snapshot received from the
// leader), and the index is rebuilt from the new file. Readers wait for the
// swap and never see the index of one file over the rows of the other.
func (s *Store) Restore(replace func() error) error {
	close(s.stopc)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopc = make(chan struct{})
	if err := replace(); err != nil {
		return err
	}
	return s.load()
}

// load rebuilds the key index and revisions from the backend and finishes
// a compaction a crash interrupted.
func (s *Store) load() error {
	s.index = newTreeIndex()
	s.rev = 0
	var err error
	var wanted int64
	s.be.Read(func(tx backend.ReadTx) {
		s.ci, s.term = ConsistentIndexIn(tx)
		s.ciUnsaved = false
		s.compactRev = compactRevIn(tx.Get(backend.Meta, metaCompactDone))
		wanted = compactRevIn(tx.Get(backend.Meta, metaCompactWanted))
		tx.ForEach(backend.Key, nil, func(k, v []byte) bool {
			if len(k) < revKeyLen {
				err = fmt.Errorf("malformed revision key %x", k)
				return false
			}
			r, tomb := parseRevKey(k)
			key, created, ver, ferr := indexFields(v)
			if ferr != nil {
				err = fmt.Errorf("decode key at revision %d: %w", r.Main, ferr)
				return false
			}
			ki := s.index.getOrCreate(key)
			if tomb {
				ki.tombstone(r)
			} else {
				ki.restore(r, created, ver)
			}
			s.rev = r.Main
			return true
		})
	})
	if err != nil {
		return fmt.Errorf("restore key index: %w", err)
	}
	// The rebuild read every record: none of the file need stay resident.
	s.be.ReleaseMapped()
	// A new store is at revision 1, as etcd's is: the first write makes 2.
	s.rev = max(s.rev, s.compactRev, wanted, 1)
	if wanted > s.compactRev {
		s.compactRev = wanted
		done := make(chan struct{})
		s.startPhysicalCompaction(wanted, s.index.compact(wanted), nil, done)
	} else if s.compactRev >= 0 {
		s.index.compact(s.compactRev)
	}
	return nil
}

// compactRevIn reads a compaction revision stored in the meta bucket, as
// etcd stores it (a revision key: main, '_', sub), so that etcd's tools
// read kvd's files and kvd restores etcd's; an 8-byte number is what kvd
// wrote before. -1 means no compaction, as in etcd.
func compactRevIn(b []byte) int64 {
	switch len(b) {
	case revKeyLen:
		r, _ := parseRevKey(b)
		return r.Main
	case 8:
		return int64(binary.BigEndian.Uint64(b))
	}
	return -1
}

func getUint(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putUint(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// Rev is the current revision.
func (s *Store) Rev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rev
}

// KeyCount is the number of keys in the index, deleted ones whose
// history is not yet compacted away included.
func (s *Store) KeyCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.index.tree.Len()
}

// CompactRev is the revision of the last compaction, -1 before any.
func (s *Store) CompactRev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.compactRev
}

// saveApplied puts the consistent index and term into the batch about to
// commit, so that the effects of every entry in it and the marker that
// they happened commit together or not at all.
func (s *Store) saveApplied(tx backend.WriteTx) error {
	if !s.ciUnsaved {
		return nil
	}
	if err := tx.Put(backend.Meta, metaConsistentIndex, putUint(s.ci)); err != nil {
		return err
	}
	if err := tx.Put(backend.Meta, metaConsistentTerm, putUint(s.term)); err != nil {
		return err
	}
	s.ciUnsaved = false
	return nil
}

// ConsistentIndex is the raft index and term of the last applied entry.
func (s *Store) ConsistentIndex() (index, term uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ci, s.term
}

// Close waits for background compaction to stop.
func (s *Store) Close() {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	s.wg.Wait()
}

// RangeOptions narrow a read.
type RangeOptions struct {
	Limit int64 // 0 for no limit
	Rev   int64 // 0 for the current revision
	Count bool  // count only, return no values
	// Paged stops counting at Limit, so that Count is at most Limit: all
	// a pager needs to know whether there is more, without walking the
	// rest of a large range's index for every page.
	Paged bool
}

// RangeResult is what a read found.
type RangeResult struct {
	KVs   []*mvccpb.KeyValue
	Rev   int64 // the revision read at
	Count int64 // keys in range, before the limit
}

// Range reads [key, end) at a revision (see treeIndex.ascend for end).
func (s *Store) Range(key, end []byte, o RangeOptions) (*RangeResult, error) {
	s.mu.RLock()
	res, read, err := s.rangeLocked(key, end, o, s.rev)
	s.mu.RUnlock()
	s.noteRead(read)
	return res, err
}

// largeRead is the size from which a read counts toward releasing the
// database file's mapped pages (see backend.NoteRead).
const largeRead = 64 << 10

// noteRead tells the backend about a read of n bytes, if it was large. It
// is called with no store lock held, as it may release the file's pages.
func (s *Store) noteRead(n int) {
	if n >= largeRead {
		s.be.NoteRead(n)
	}
}

// rangeLocked reads a range, and says how many bytes of records it read.
func (s *Store) rangeLocked(key, end []byte, o RangeOptions, cur int64) (*RangeResult, int, error) {
	rev := o.Rev
	if rev <= 0 {
		rev = cur
	}
	if rev > cur {
		return nil, 0, ErrFutureRev
	}
	if rev < s.compactRev {
		return nil, 0, ErrCompacted
	}
	res := &RangeResult{Rev: cur}
	var revs []Revision
	s.index.ascend(key, end, func(ki *keyIndex) bool {
		mod, _, _, ok := ki.at(rev)
		if !ok {
			return true
		}
		res.Count++
		if !o.Count && (o.Limit <= 0 || int64(len(revs)) < o.Limit) {
			revs = append(revs, mod)
		}
		return !o.Paged || o.Limit <= 0 || res.Count < o.Limit
	})
	if o.Count || len(revs) == 0 {
		return res, 0, nil
	}
	var (
		err  error
		read int
	)
	res.KVs = make([]*mvccpb.KeyValue, 0, len(revs))
	s.be.Read(func(tx backend.ReadTx) {
		keys := tx.Lookup(backend.Key)
		for _, r := range revs {
			v := keys.Get(revKey(r, false))
			kv := new(mvccpb.KeyValue)
			if v == nil {
				err = fmt.Errorf("revision %d.%d is in the index but not in the database", r.Main, r.Sub)
				return
			}
			if err = proto.Unmarshal(v, kv); err != nil {
				return
			}
			read += len(v)
			res.KVs = append(res.KVs, kv)
		}
	})
	if err != nil {
		return nil, read, fmt.Errorf("range: %w", err)
	}
	return res, read, nil
}

// Reader is a consistent view of the store: the applier's write txn, or a
// read view.
type Reader interface {
	Range(key, end []byte, o RangeOptions) (*RangeResult, error)
	Rev() int64
}

// Read runs fn with a view that no write changes until fn returns, so a
// read-only txn sees one revision throughout.
func (s *Store) Read(fn func(Reader)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(readView{s})
}

type readView struct{ s *Store }

func (v readView) Range(key, end []byte, o RangeOptions) (*RangeResult, error) {
	res, _, err := v.s.rangeLocked(key, end, o, v.s.rev)
	return res, err
}

func (v readView) Rev() int64 { return v.s.rev }
