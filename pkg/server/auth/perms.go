package auth

import (
	"bytes"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
)

// span is the key interval [from, to); an empty to is open-ended (every
// key from from on).
type span struct{ from, to []byte }

// spanOf is the interval a permission or a request names: a single key
// when end is empty, every key from key on when end is "\x00", else
// [key, end).
func spanOf(key, end []byte) span {
	switch {
	case len(end) == 0:
		return span{key, append(slices.Clip(key), 0)}
	case len(end) == 1 && end[0] == 0:
		return span{key, nil}
	}
	return span{key, end}
}

// endsBefore says whether the end a is below the end b, an empty end
// being past every key.
func endsBefore(a, b []byte) bool {
	switch {
	case len(a) == 0:
		return false
	case len(b) == 0:
		return true
	}
	return bytes.Compare(a, b) < 0
}

// spans is a sorted set of disjoint, non-touching intervals: the keys a
// user may read, or write. Checking a request is a binary search, not a
// walk over every role's permissions.
type spans []span

// merge builds the set covering every interval of in.
func merge(in []span) spans {
	slices.SortFunc(in, func(a, b span) int { return bytes.Compare(a.from, b.from) })
	var out spans
	for _, s := range in {
		if n := len(out); n > 0 && !endsBefore(out[n-1].to, s.from) {
			if endsBefore(out[n-1].to, s.to) {
				out[n-1].to = s.to
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// holds says whether key is in the set: covers for a single key,
// without building its span.
func (ss spans) holds(key []byte) bool {
	i, found := slices.BinarySearchFunc(ss, key, func(e span, k []byte) int { return bytes.Compare(e.from, k) })
	if !found {
		i--
	}
	return i >= 0 && endsBefore(key, ss[i].to)
}

// covers says whether every key of s is in the set.
func (ss spans) covers(s span) bool {
	// The last interval starting at or before s.from is the only one that
	// can hold s whole, as intervals of the set never touch.
	i, found := slices.BinarySearchFunc(ss, s.from, func(e span, k []byte) int { return bytes.Compare(e.from, k) })
	if !found {
		i--
	}
	if i < 0 {
		return false
	}
	c := ss[i]
	if !endsBefore(s.from, c.to) {
		return false
	}
	return !endsBefore(c.to, s.to)
}

// userPerms are what one user may read and write, merged over its roles.
type userPerms struct {
	root        bool
	read, write spans
}

func permsOf(u *authpb.User, roles map[string]*authpb.Role) *userPerms {
	p := &userPerms{}
	var read, write []span
	for _, name := range u.Roles {
		if name == RootRole {
			p.root = true
		}
		r := roles[name]
		if r == nil {
			continue
		}
		for _, perm := range r.KeyPermission {
			s := spanOf(perm.Key, perm.RangeEnd)
			if perm.PermType == authpb.READ || perm.PermType == authpb.READWRITE {
				read = append(read, s)
			}
			if perm.PermType == authpb.WRITE || perm.PermType == authpb.READWRITE {
				write = append(write, s)
			}
		}
	}
	p.read, p.write = merge(read), merge(write)
	return p
}

// validRange is etcd's rule for a permission's range: a key, and an end
// that is empty (that key alone), "\x00" (from the key on) or above it.
func validRange(key, end []byte) bool {
	switch {
	case len(key) == 0:
		return false
	case len(end) == 0, len(end) == 1 && end[0] == 0:
		return true
	}
	return bytes.Compare(key, end) < 0
}
