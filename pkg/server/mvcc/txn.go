package mvcc

import (
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

// TxnWrite is a write transaction: every change in it shares one main
// revision. Only one exists at a time (the applier's), and readers wait
// while it runs, so they never see half a txn.
type TxnWrite struct {
	s       *Store
	tx      backend.WriteTx
	main    int64
	changes []*mvccpb.KeyValue
	err     error
}

// Write runs fn as one write transaction and records index and term as
// the consistent index, which reaches the database in the same batch as
// the effects (see saveApplied).
func (s *Store) Write(index, term uint64, fn func(*TxnWrite) error) error {
	var t *TxnWrite
	err := s.write(index, term, func(tx *TxnWrite) error { t = tx; return fn(tx) })
	// Watchers hear of a txn once readers can see it; the applier is the
	// only writer, so they hear of txns in revision order.
	if err == nil && t != nil && len(t.changes) > 0 && s.observer != nil {
		s.observer(t.main, t.changes)
	}
	return err
}

func (s *Store) write(index, term uint64, fn func(*TxnWrite) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.be.Write(func(tx backend.WriteTx) error {
		t := &TxnWrite{s: s, tx: tx, main: s.rev + 1}
		err := fn(t)
		if t.err != nil {
			// A storage error mid-txn leaves the batch in an unknown
			// state; the caller stops the member.
			return t.err
		}
		if len(t.changes) > 0 {
			s.rev = t.main
		}
		s.ci, s.term, s.ciUnsaved = index, term, true
		return err
	})
}

// Rev is the revision reads in this txn see: its own changes included.
func (t *TxnWrite) Rev() int64 {
	if len(t.changes) > 0 {
		return t.main
	}
	return t.main - 1
}

// Range reads inside the txn, seeing its earlier changes.
func (t *TxnWrite) Range(key, end []byte, o RangeOptions) (*RangeResult, error) {
	cur := t.Rev()
	rev := o.Rev
	if rev <= 0 {
		rev = cur
	}
	if rev > cur {
		return nil, ErrFutureRev
	}
	if rev < t.s.compactRev {
		return nil, ErrCompacted
	}
	res := &RangeResult{Rev: cur}
	var kvs []*mvccpb.KeyValue
	t.s.index.ascend(key, end, func(ki *keyIndex) bool {
		mod, _, _, ok := ki.at(rev)
		if !ok {
			return true
		}
		res.Count++
		if o.Count || (o.Limit > 0 && int64(len(kvs)) >= o.Limit) {
			return true
		}
		v := t.tx.Get(backend.Key, revKey(mod, false))
		kv := new(mvccpb.KeyValue)
		if v == nil {
			t.err = fmt.Errorf("revision %d.%d is in the index but not in the database", mod.Main, mod.Sub)
			return false
		}
		if err := proto.Unmarshal(v, kv); err != nil {
			t.err = err
			return false
		}
		kvs = append(kvs, kv)
		return true
	})
	if t.err != nil {
		return nil, t.err
	}
	res.KVs = kvs
	return res, nil
}

// Put sets key to value with lease and returns the new revision.
func (t *TxnWrite) Put(key, value []byte, lease int64) int64 {
	r := Revision{Main: t.main, Sub: int64(len(t.changes))}
	ki := t.s.index.getOrCreate(key)
	created := r
	ver := int64(1)
	if _, c, v, ok := ki.at(t.main); ok {
		created, ver = c, v+1
	}
	kv := &mvccpb.KeyValue{Key: ki.key, Value: value, CreateRevision: created.Main, ModRevision: r.Main, Version: ver, Lease: lease}
	t.store(r, kv, false)
	ki.put(r)
	return r.Main
}

// DeleteRange deletes the keys in [key, end) and returns them as they were.
func (t *TxnWrite) DeleteRange(key, end []byte) []*mvccpb.KeyValue {
	var doomed []*keyIndex
	t.s.index.ascend(key, end, func(ki *keyIndex) bool {
		if _, _, _, ok := ki.at(t.main); ok {
			doomed = append(doomed, ki)
		}
		return true
	})
	if len(doomed) == 0 {
		return nil
	}
	prev, err := t.Range(key, end, RangeOptions{Rev: t.Rev()})
	if err != nil {
		t.err = err
		return nil
	}
	for _, ki := range doomed {
		r := Revision{Main: t.main, Sub: int64(len(t.changes))}
		t.store(r, &mvccpb.KeyValue{Key: ki.key}, true)
		ki.tombstone(r)
	}
	return prev.KVs
}

func (t *TxnWrite) store(r Revision, kv *mvccpb.KeyValue, tombstone bool) {
	b, err := proto.Marshal(kv)
	if err == nil {
		err = t.tx.Put(backend.Key, revKey(r, tombstone), b)
	}
	if err != nil && t.err == nil {
		t.err = fmt.Errorf("store revision %d.%d: %w", r.Main, r.Sub, err)
	}
	t.changes = append(t.changes, kv)
}

// Changes lists what the txn wrote, in order; deletions carry only a key.
func (t *TxnWrite) Changes() []*mvccpb.KeyValue { return t.changes }

// PutMeta stores a record about the member's raft state (such as its
// configuration) in the meta bucket. It commits with the txn's
// consistent index, so a copy of the database never holds one without
// the other.
func (t *TxnWrite) PutMeta(key, value []byte) { t.PutRecord(backend.Meta, key, value) }

// PutRecord stores a record outside the key space (a lease, say) in
// bucket, committed with the txn's changes and consistent index.
func (t *TxnWrite) PutRecord(bucket, key, value []byte) {
	if err := t.tx.Put(bucket, key, value); err != nil && t.err == nil {
		t.err = fmt.Errorf("store record %x in %s: %w", key, bucket, err)
	}
}

// DeleteRecord removes a record PutRecord stored.
func (t *TxnWrite) DeleteRecord(bucket, key []byte) {
	if err := t.tx.Delete(bucket, key); err != nil && t.err == nil {
		t.err = fmt.Errorf("delete record %x in %s: %w", key, bucket, err)
	}
}

// MetaGetter reads the meta bucket of some view of the database, such as
// a backend.DBSnapshot.
type MetaGetter interface {
	Get(bucket, key []byte) []byte
}

// ConsistentIndexIn is the raft index and term of the last entry applied
// in db.
func ConsistentIndexIn(db MetaGetter) (index, term uint64) {
	return getUint(db.Get(backend.Meta, metaConsistentIndex)), getUint(db.Get(backend.Meta, metaConsistentTerm))
}
