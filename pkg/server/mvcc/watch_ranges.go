package mvcc

import (
	"bytes"
	"math/rand/v2"
)

// rangeIndex holds the range watchers so that those whose range holds a
// key are found in time logarithmic in the number of distinct ranges plus
// the number found, instead of checking every range watcher on every
// write. It is an interval tree: a treap ordered by (start, end), each node
// also knowing the greatest end in its subtree, so a search skips every
// subtree whose ranges all end at or before the key. Watchers of the same
// range share one node, as the many watchers of one prefix do.
type rangeIndex struct {
	root *rangeNode
}

// rangeNode is one distinct range [start, end); a nil end means no upper
// bound (a watch "from key", End "\x00").
type rangeNode struct {
	start, end  []byte
	maxEnd      []byte // greatest end in this subtree; nil: unbounded
	prio        uint64
	left, right *rangeNode
	watchers    map[*watcher]struct{}
}

// bounds is the range a watcher watches, as the index keeps it.
func bounds(wt *watcher) (start, end []byte) {
	if len(wt.End) == 1 && wt.End[0] == 0 {
		return wt.Key, nil
	}
	return wt.Key, wt.End
}

// compareEnds orders range ends, nil (unbounded) after every key.
func compareEnds(a, b []byte) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return bytes.Compare(a, b)
}

// endsAfter says whether a range ending at end still holds key.
func endsAfter(end, key []byte) bool { return end == nil || bytes.Compare(key, end) < 0 }

func compareRanges(start, end []byte, n *rangeNode) int {
	if c := bytes.Compare(start, n.start); c != 0 {
		return c
	}
	return compareEnds(end, n.end)
}

func (ix *rangeIndex) add(wt *watcher) {
	start, end := bounds(wt)
	ix.root = ix.root.insert(start, end, wt)
}

func (ix *rangeIndex) remove(wt *watcher) {
	start, end := bounds(wt)
	ix.root = ix.root.delete(start, end, wt)
}

// stab calls fn for every watcher whose range holds key.
func (ix *rangeIndex) stab(key []byte, fn func(*watcher)) { ix.root.stab(key, fn) }

func (n *rangeNode) stab(key []byte, fn func(*watcher)) {
	for n != nil && endsAfter(n.maxEnd, key) {
		n.left.stab(key, fn)
		if bytes.Compare(n.start, key) > 0 {
			return // this range and all to its right start after key
		}
		if endsAfter(n.end, key) {
			for wt := range n.watchers {
				fn(wt)
			}
		}
		n = n.right
	}
}

func (n *rangeNode) insert(start, end []byte, wt *watcher) *rangeNode {
	if n == nil {
		return &rangeNode{start: start, end: end, maxEnd: end, prio: rand.Uint64(), watchers: map[*watcher]struct{}{wt: {}}}
	}
	switch c := compareRanges(start, end, n); {
	case c == 0:
		n.watchers[wt] = struct{}{}
		return n
	case c < 0:
		n.left = n.left.insert(start, end, wt)
		if n.left.prio > n.prio {
			n = n.rotateRight()
		}
	default:
		n.right = n.right.insert(start, end, wt)
		if n.right.prio > n.prio {
			n = n.rotateLeft()
		}
	}
	n.fix()
	return n
}

func (n *rangeNode) delete(start, end []byte, wt *watcher) *rangeNode {
	if n == nil {
		return nil
	}
	switch c := compareRanges(start, end, n); {
	case c == 0:
		delete(n.watchers, wt)
		if len(n.watchers) > 0 {
			return n
		}
		return merge(n.left, n.right)
	case c < 0:
		n.left = n.left.delete(start, end, wt)
	default:
		n.right = n.right.delete(start, end, wt)
	}
	n.fix()
	return n
}

// merge joins two treaps, every range of a before every range of b.
func merge(a, b *rangeNode) *rangeNode {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a.right = merge(a.right, b)
		a.fix()
		return a
	default:
		b.left = merge(a, b.left)
		b.fix()
		return b
	}
}

func (n *rangeNode) rotateRight() *rangeNode {
	l := n.left
	n.left, l.right = l.right, n
	n.fix()
	l.fix()
	return l
}

func (n *rangeNode) rotateLeft() *rangeNode {
	r := n.right
	n.right, r.left = r.left, n
	n.fix()
	r.fix()
	return r
}

// fix recomputes maxEnd from the node and its children.
func (n *rangeNode) fix() {
	n.maxEnd = n.end
	for _, c := range []*rangeNode{n.left, n.right} {
		if c != nil && compareEnds(c.maxEnd, n.maxEnd) > 0 {
			n.maxEnd = c.maxEnd
		}
	}
}
