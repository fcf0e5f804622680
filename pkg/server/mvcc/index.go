package mvcc

import (
	"bytes"
	"encoding/binary"

	"github.com/google/btree"
)

// Revision orders changes: every write txn gets the next Main, and each
// change inside it the next Sub.
type Revision struct{ Main, Sub int64 }

// revKeyLen is the size of a revision as a database key: Main, '_', Sub,
// all big-endian so byte order is revision order. A tombstone adds 't'.
const revKeyLen = 17

func revKey(r Revision, tombstone bool) []byte {
	b := make([]byte, revKeyLen, revKeyLen+1)
	binary.BigEndian.PutUint64(b, uint64(r.Main))
	b[8] = '_'
	binary.BigEndian.PutUint64(b[9:], uint64(r.Sub))
	if tombstone {
		b = append(b, 't')
	}
	return b
}

func parseRevKey(b []byte) (r Revision, tombstone bool) {
	r.Main = int64(binary.BigEndian.Uint64(b))
	r.Sub = int64(binary.BigEndian.Uint64(b[9:]))
	return r, len(b) == revKeyLen+1 && b[revKeyLen] == 't'
}

// generation is one life of a key: from its creation to its deletion.
type generation struct {
	created Revision
	revs    []Revision // every change in this life; a tombstone ends it
	ver     int64      // version of the last change
}

// keyIndex is the history of one key, oldest generation first. The last
// generation is empty while the key does not exist.
type keyIndex struct {
	key  []byte
	gens []generation
}

func (ki *keyIndex) put(r Revision) {
	if len(ki.gens) == 0 {
		ki.gens = append(ki.gens, generation{})
	}
	g := &ki.gens[len(ki.gens)-1]
	if len(g.revs) == 0 {
		g.created = r
	}
	g.revs = append(g.revs, r)
	g.ver++
}

// restore adds a change read back from the database, whose record says
// when its life began and its version: after a compaction the oldest
// change left of a life is not its creation, so neither can be inferred
// by counting.
func (ki *keyIndex) restore(r Revision, created, ver int64) {
	ki.put(r)
	g := &ki.gens[len(ki.gens)-1]
	g.created = Revision{Main: created}
	g.ver = ver
}

func (ki *keyIndex) tombstone(r Revision) {
	ki.put(r)
	ki.gens = append(ki.gens, generation{})
}

// at finds the change of the key visible at revision rev: its revision,
// creation revision and version. ok is false if the key did not exist.
func (ki *keyIndex) at(rev int64) (mod, created Revision, ver int64, ok bool) {
	for i := len(ki.gens) - 1; i >= 0; i-- {
		g := ki.gens[i]
		if len(g.revs) == 0 {
			continue
		}
		if g.revs[0].Main > rev {
			continue
		}
		// The generation started at or before rev. If it ended at or
		// before rev, the key was deleted then.
		last := len(g.revs) - 1
		isClosed := i < len(ki.gens)-1
		if isClosed && g.revs[last].Main <= rev {
			return Revision{}, Revision{}, 0, false
		}
		for j := last; j >= 0; j-- {
			if g.revs[j].Main <= rev {
				return g.revs[j], g.created, g.ver - int64(last-j), true
			}
		}
	}
	return Revision{}, Revision{}, 0, false
}

// compact drops history below rev, keeping for each key the change visible
// at rev (unless that is a deletion). It records the revisions to keep in
// keep and reports whether the key has any history left.
func (ki *keyIndex) compact(rev int64, keep map[Revision]struct{}) bool {
	var gens []generation
	for i, g := range ki.gens {
		closed := i < len(ki.gens)-1
		if len(g.revs) == 0 {
			if !closed {
				gens = append(gens, g)
			}
			continue
		}
		last := g.revs[len(g.revs)-1]
		if closed && last.Main <= rev {
			continue // whole life, deletion included, is history
		}
		j := 0
		for j+1 < len(g.revs) && g.revs[j+1].Main <= rev {
			j++
		}
		if g.revs[j].Main <= rev {
			keep[g.revs[j]] = struct{}{}
		}
		g.revs = append([]Revision(nil), g.revs[j:]...)
		gens = append(gens, g)
	}
	ki.gens = gens
	for _, g := range gens {
		if len(g.revs) > 0 {
			return true
		}
	}
	return false
}

// treeIndex maps keys to their histories.
type treeIndex struct {
	tree *btree.BTreeG[indexItem]
}

// indexItem is a key's slot in the tree. It holds the key's first eight
// bytes as a number and the key's slice header, so that most comparisons
// on the way down the tree are settled by a number stored in the node
// itself, and the rest read the key's bytes without first loading its
// keyIndex: a lookup among 100,000 keys otherwise waits on two cache
// misses per comparison.
type indexItem struct {
	head uint64
	key  []byte
	ki   *keyIndex
}

func itemOf(key []byte, ki *keyIndex) indexItem {
	var b [8]byte
	copy(b[:], key)
	return indexItem{head: binary.BigEndian.Uint64(b[:]), key: key, ki: ki}
}

// lessItem orders items as their keys: heads that differ differ at a byte
// both keys have, or where the shorter one ended (a zero pad sorting
// before any other byte), so their order is the keys' order; equal heads
// leave it to the whole keys.
func lessItem(a, b indexItem) bool {
	if a.head != b.head {
		return a.head < b.head
	}
	return bytes.Compare(a.key, b.key) < 0
}

func newTreeIndex() *treeIndex {
	return &treeIndex{tree: btree.NewG(32, lessItem)}
}

func (t *treeIndex) get(key []byte) *keyIndex {
	it, _ := t.tree.Get(itemOf(key, nil))
	return it.ki
}

func (t *treeIndex) getOrCreate(key []byte) *keyIndex {
	if ki := t.get(key); ki != nil {
		return ki
	}
	ki := &keyIndex{key: bytes.Clone(key)}
	t.tree.ReplaceOrInsert(itemOf(ki.key, ki))
	return ki
}

// ascend visits keys in [key, end) in order; end nil means only key, and
// end "\x00" means every key from key on.
func (t *treeIndex) ascend(key, end []byte, fn func(*keyIndex) bool) {
	if end == nil {
		if ki := t.get(key); ki != nil {
			fn(ki)
		}
		return
	}
	visit := func(it indexItem) bool { return fn(it.ki) }
	if len(end) == 1 && end[0] == 0 {
		t.tree.AscendGreaterOrEqual(itemOf(key, nil), visit)
		return
	}
	t.tree.AscendRange(itemOf(key, nil), itemOf(end, nil), visit)
}

// each visits every key in order.
func (t *treeIndex) each(fn func(*keyIndex) bool) {
	t.tree.Ascend(func(it indexItem) bool { return fn(it.ki) })
}

func (t *treeIndex) compact(rev int64) map[Revision]struct{} {
	keep := map[Revision]struct{}{}
	var empty []*keyIndex
	t.each(func(ki *keyIndex) bool {
		if !ki.compact(rev, keep) {
			empty = append(empty, ki)
		}
		return true
	})
	for _, ki := range empty {
		t.tree.Delete(itemOf(ki.key, ki))
	}
	return keep
}
