// Package lease is kvd's lessor: it keeps every lease, its TTL and the keys
// attached to it, and, on the leader, when each lease expires.
//
// Lease state changes only as raft entries apply (Grant, Revoke,
// Checkpoint, and puts and deletes moving keys between leases), so every
// member holds the same leases. Time is the leader's alone: only the
// leader (the primary lessor) tracks expiries, in a heap, and it ends an
// expired lease by proposing its revocation through raft, so every member
// deletes the attached keys at the same revision. Followers never expire
// anything; a member that becomes leader starts every lease's clock again
// from its last checkpointed remaining TTL, plus an extension so that no
// lease expires because of the election itself.
package lease

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

// None is the lease of a key that has none.
const None int64 = 0

// MaxTTL is the largest TTL a lease may be granted, in seconds, as etcd's.
const MaxTTL = 9_000_000_000

var (
	ErrNotFound    = errors.New("lease: lease not found")
	ErrExists      = errors.New("lease: lease already exists")
	ErrTTLTooLarge = errors.New("lease: TTL too large")
	// ErrNotPrimary means this member does not keep lease time: ask the
	// leader.
	ErrNotPrimary = errors.New("lease: not the primary lessor")
)

// retryRevoke is how long an expired lease whose revocation was proposed
// waits before it is proposed again, should that proposal be lost.
const retryRevoke = 3 * time.Second

// Writer stores lease records in the same database batch as the raft
// entry that changed them: the applier's write txn.
type Writer interface {
	PutRecord(bucket, key, value []byte)
	DeleteRecord(bucket, key []byte)
}

// Lease is one lease as the lessor keeps it.
type lease struct {
	id  int64
	ttl int64 // granted, in seconds
	// remaining is the last checkpointed remaining TTL in seconds; 0
	// means the whole TTL.
	remaining int64
	keys      map[string]struct{}

	// Kept by the primary only.
	expiry         time.Time
	dueAt          time.Time // when the expiry heap offers it next
	index          int       // in the expiry heap; -1 when not in it
	nextCheckpoint time.Time // zero when none is due
	// checkpointing is set while a checkpoint of the lease is on its way
	// through raft: a renewal meanwhile must be followed by a reset.
	checkpointing bool
}

// Config tunes a Lessor.
type Config struct {
	// MinTTL is the shortest TTL granted, in seconds: a lease must outlive
	// an election, or a leader change could expire it before any client
	// had a chance to renew it.
	MinTTL int64
	// CheckpointInterval is how often the leader records the remaining
	// TTL of long leases through raft; zero turns checkpoints off.
	CheckpointInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Lessor keeps the leases of one member.
type Lessor struct {
	cfg Config

	mu      sync.RWMutex
	leases  map[int64]*lease
	owners  map[string]int64 // key -> lease it is attached to
	primary bool
	expiry  expiryHeap
}

// New returns an empty lessor; Recover fills it from a database.
func New(cfg Config) *Lessor {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Lessor{cfg: cfg, leases: map[int64]*lease{}, owners: map[string]int64{}}
}

// Grant creates lease id with ttl seconds, raised to the minimum TTL,
// and returns the TTL granted.
func (l *Lessor) Grant(w Writer, id, ttl int64) (int64, error) {
	if ttl > MaxTTL {
		return 0, ErrTTLTooLarge
	}
	if id == 0 {
		return 0, ErrNotFound
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.leases[id]; ok {
		return 0, ErrExists
	}
	le := &lease{id: id, ttl: max(ttl, l.cfg.MinTTL), keys: map[string]struct{}{}, index: -1}
	l.leases[id] = le
	le.persist(w)
	if l.primary {
		l.refresh(le, 0)
	}
	return le.ttl, nil
}

// Revoke removes lease id and returns its keys, sorted, for the caller to
// delete in the same write.
func (l *Lessor) Revoke(w Writer, id int64) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	le, ok := l.leases[id]
	if !ok {
		return nil, ErrNotFound
	}
	delete(l.leases, id)
	l.unschedule(le)
	w.DeleteRecord(backend.Lease, recordKey(id))
	keys := make([]string, 0, len(le.keys))
	for k := range le.keys {
		delete(l.owners, k)
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// Checkpoint records that lease id had remaining seconds left when the
// leader looked; 0 means the whole TTL again (after a renewal).
func (l *Lessor) Checkpoint(w Writer, id, remaining int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	le, ok := l.leases[id]
	if !ok {
		return
	}
	le.remaining = remaining
	le.checkpointing = false
	le.persist(w)
}

// Exists says whether lease id exists.
func (l *Lessor) Exists(id int64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.leases[id]
	return ok
}

// Attach makes key belong to lease id (0: to none), taking it from the
// lease it belonged to.
func (l *Lessor) Attach(key []byte, id int64) {
	// Most puts neither have nor had a lease: a shared lock and a lookup
	// that does not copy the key tell so.
	l.mu.RLock()
	old, had := l.owners[string(key)]
	l.mu.RUnlock()
	if old == id || (!had && id == None) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := string(key)
	if old, ok := l.owners[k]; ok {
		if old == id {
			return
		}
		if le := l.leases[old]; le != nil {
			delete(le.keys, k)
		}
		delete(l.owners, k)
	}
	if le := l.leases[id]; le != nil {
		le.keys[k] = struct{}{}
		l.owners[k] = id
	}
}

// Leases lists the IDs of every lease, in order.
func (l *Lessor) Leases() []int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	ids := make([]int64, 0, len(l.leases))
	for id := range l.leases {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Status is what TimeToLive reports of a lease.
type Status struct {
	GrantedTTL int64
	// TTL is the remaining time in whole seconds.
	TTL  int64
	Keys []string // sorted
}

// TimeToLive reports lease id. Only the primary knows how long a lease
// has left.
func (l *Lessor) TimeToLive(id int64, withKeys bool) (Status, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.primary {
		return Status{}, ErrNotPrimary
	}
	le, ok := l.leases[id]
	if !ok {
		return Status{}, ErrNotFound
	}
	st := Status{GrantedTTL: le.ttl, TTL: max(0, int64(le.expiry.Sub(l.cfg.Now()).Seconds()))}
	if withKeys {
		for k := range le.keys {
			st.Keys = append(st.Keys, k)
		}
		slices.Sort(st.Keys)
	}
	return st, nil
}

func recordKey(id int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

// persist stores the lease's ID, TTL and remaining TTL (see record.go).
func (le *lease) persist(w Writer) {
	w.PutRecord(backend.Lease, recordKey(le.id), encodeRecord(le.id, le.ttl, le.remaining))
}

// Scanner reads the records of a bucket in order: a backend transaction.
type Scanner interface {
	ForEach(bucket, start []byte, fn func(k, v []byte) bool)
}

// Recover replaces the lessor's leases with those stored in db, and
// attaches to them the keys that attached(yield) reports; it calls
// attached only when some lease exists. The member is a follower again
// until promoted.
func (l *Lessor) Recover(db Scanner, attached func(yield func(key []byte, id int64))) error {
	leases := map[int64]*lease{}
	var err error
	db.ForEach(backend.Lease, nil, func(k, v []byte) bool {
		le := &lease{keys: map[string]struct{}{}, index: -1}
		if le.id, le.ttl, le.remaining, err = decodeRecord(v); err != nil {
			err = fmt.Errorf("lease %x: %w", k, err)
			return false
		}
		leases[le.id] = le
		return true
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases, l.owners, l.primary, l.expiry = leases, map[string]int64{}, false, nil
	if len(leases) == 0 {
		return nil
	}
	attached(func(key []byte, id int64) {
		if le := leases[id]; le != nil {
			le.keys[string(key)] = struct{}{}
			l.owners[string(key)] = id
		}
	})
	return nil
}

// ceilSeconds is d in whole seconds, rounded up.
func ceilSeconds(d time.Duration) int64 { return int64(math.Ceil(d.Seconds())) }

// expiryHeap orders the primary's leases by when each is next due: its
// expiry, or the retry of a revocation proposed and not yet applied. Each
// lease is in it at most once, at its index, so a renewal moves it in
// place.
type expiryHeap []*lease

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].dueAt.Before(h[j].dueAt) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	le := x.(*lease)
	le.index = len(*h)
	*h = append(*h, le)
}
func (h *expiryHeap) Pop() any {
	old := *h
	le := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	le.index = -1
	return le
}

// schedule makes le due at at. The caller holds mu and is the primary.
func (l *Lessor) schedule(le *lease, at time.Time) {
	le.dueAt = at
	if le.index >= 0 {
		heap.Fix(&l.expiry, le.index)
		return
	}
	heap.Push(&l.expiry, le)
}

// unschedule takes le out of the heap, if it is there.
func (l *Lessor) unschedule(le *lease) {
	if le.index >= 0 {
		heap.Remove(&l.expiry, le.index)
	}
}

// Keys lists the keys attached to lease id, sorted.
func (l *Lessor) Keys(id int64) []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	le, ok := l.leases[id]
	if !ok {
		return nil
	}
	keys := make([]string, 0, len(le.keys))
	for k := range le.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
