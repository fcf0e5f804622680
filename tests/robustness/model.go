// Package robustness checks that kvd stays linearizable, with etcd's
// revision semantics, while faults are injected into a running cluster.
//
// Client workers record every request they make (history.go); the
// recorded history is then checked against a sequential model of the
// key-value store (this file) with porcupine. Watchers running on the
// same cluster record every event (watch.go), and their streams are
// checked against the store's event log and the history
// (watch_check.go).
package robustness

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// OpKind names a request type of the model.
type OpKind string

const (
	OpPut OpKind = "put"
	// OpGet reads one key.
	OpGet OpKind = "get"
	// OpRange reads every key in [Key, End), at most Limit of them when
	// Limit is not 0.
	OpRange  OpKind = "range"
	OpDelete OpKind = "delete"
	// OpTxn is "if mod_revision(Key) == ExpectModRev then put(Key, Value)
	// else get(Key)".
	OpTxn OpKind = "txn"
	// OpMultiTxn is "if every compare of Cmps holds then apply Then, all
	// at one revision, else range [Key, End)".
	OpMultiTxn OpKind = "multitxn"
	// OpCompact compacts the store's history at Revision.
	OpCompact OpKind = "compact"
	// OpGrant grants a lease; the server picks its ID (Output.LeaseID).
	OpGrant OpKind = "grant"
	// OpRevoke revokes lease LeaseID, deleting its keys at one revision.
	OpRevoke OpKind = "revoke"
	// OpKeepAlive renews lease LeaseID once; it changes nothing the
	// model tracks, but it must succeed exactly while the lease exists.
	OpKeepAlive OpKind = "keepalive"
	// OpAlarm lists the active alarms (Alarm "list") or disarms NOSPACE
	// for every member (Alarm "disarm"), both entries through raft. The
	// workload never fills the quota, so no alarm is ever active: neither
	// changes the model, and an answer that names an alarm is wrong.
	OpAlarm OpKind = "alarm"
)

// LeaseNotFound is the server's definite refusal of a request naming a
// lease that does not exist (put with it, revoke, keep-alive).
const LeaseNotFound = "lease not found"

// Cmp is a compare of a multi-op txn: mod_revision(Key) == ModRev, with
// 0 standing for an absent key, as in etcd.
type Cmp struct {
	Key    string `json:"key"`
	ModRev int64  `json:"modRev"`
}

// TxnOp is a write of a multi-op txn's then branch: OpPut or OpDelete of
// one key. A txn never names one key twice (etcd refuses that).
type TxnOp struct {
	Kind  OpKind `json:"kind"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
	Lease int64  `json:"lease,omitempty"`
}

// Input is one request as the client sent it. Which fields mean
// something depends on Kind; see the OpKind constants.
type Input struct {
	Kind         OpKind  `json:"kind"`
	Key          string  `json:"key,omitempty"`
	End          string  `json:"end,omitempty"`
	Limit        int64   `json:"limit,omitempty"`
	Value        string  `json:"value,omitempty"`
	ExpectModRev int64   `json:"expectModRev,omitempty"`
	Cmps         []Cmp   `json:"cmps,omitempty"`
	Then         []TxnOp `json:"then,omitempty"`
	Revision     int64   `json:"revision,omitempty"`
	// LeaseID is the lease a put attaches its key to (0: none), or the
	// lease a revoke or keep-alive names.
	LeaseID int64 `json:"leaseID,omitempty"`
	// Alarm is an OpAlarm's action: "list" or "disarm".
	Alarm string `json:"alarm,omitempty"`
}

// KV is one key as a read returns it and as the model holds it.
type KV struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	CreateRev int64  `json:"createRev"`
	ModRev    int64  `json:"modRev"`
	Version   int64  `json:"version"`
	Lease     int64  `json:"lease,omitempty"`
}

// Compaction refusals: definite answers from the server, unlike Err.
const (
	CompactedErr = "compacted" // the revision was already compacted
	FutureErr    = "future"    // the revision is above the current one
)

// Output is what the client got back. When Err is set the outcome is
// unknown and no other field means anything.
type Output struct {
	Err string `json:"err,omitempty"`
	// Revision is the response header's revision.
	Revision int64 `json:"revision"`

	// Get, and the else branch of a Txn.
	Found     bool   `json:"found,omitempty"`
	Value     string `json:"value,omitempty"`
	ModRev    int64  `json:"modRev,omitempty"`
	CreateRev int64  `json:"createRev,omitempty"`
	Version   int64  `json:"version,omitempty"`
	Lease     int64  `json:"lease,omitempty"`

	// Range, and the else branch of a MultiTxn.
	KVs   []KV  `json:"kvs,omitempty"`
	Count int64 `json:"count,omitempty"`
	More  bool  `json:"more,omitempty"`

	// Delete, and the then branch of a MultiTxn (the sum of its deletes).
	Deleted int64 `json:"deleted,omitempty"`

	// Txn and MultiTxn.
	Succeeded bool `json:"succeeded,omitempty"`

	// Compact: CompactedErr or FutureErr when the server refused it.
	CompactErr string `json:"compactErr,omitempty"`

	// Grant: the lease granted. Put, revoke and keep-alive: LeaseErr is
	// LeaseNotFound when the server refused the lease they named; a
	// keep-alive that renewed it has Succeeded set.
	LeaseID  int64  `json:"leaseID,omitempty"`
	LeaseErr string `json:"leaseErr,omitempty"`

	// Alarm: how many alarms the answer names.
	Alarms int `json:"alarms,omitempty"`
}

// State is the model's state: the store's revision, the revision its
// history was last compacted at (0 for never), its live keys, sorted by
// key, and its leases, sorted. Leases never expire in the model: the
// workload keeps every lease it uses alive, so a key of a lease goes
// only when the lease is revoked. States are never changed once built;
// a step makes a new one. The hash is computed once, when the state is
// built, so that porcupine's cache lookups cost little.
type State struct {
	Revision  int64
	Compacted int64
	Keys      []KV
	Leases    []int64
	hash      uint64
}

// FNV-1a, written out so that hashing a state allocates nothing.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashInt(h uint64, v int64) uint64 {
	for i := 0; i < 8; i++ {
		h = (h ^ uint64(v&0xff)) * fnvPrime
		v >>= 8
	}
	return h
}

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	// A terminator, so that ("ab", "c") and ("a", "bc") differ.
	return (h ^ 0xff) * fnvPrime
}

func newState(rev, compacted int64, keys []KV, leases []int64) *State {
	s := &State{Revision: rev, Compacted: compacted, Keys: keys, Leases: leases}
	h := hashInt(hashInt(fnvOffset, rev), compacted)
	for _, k := range keys {
		h = hashString(hashString(h, k.Key), k.Value)
		h = hashInt(hashInt(hashInt(hashInt(h, k.CreateRev), k.ModRev), k.Version), k.Lease)
	}
	for _, l := range leases {
		h = hashInt(h, l)
	}
	s.hash = h
	return s
}

func (s *State) hasLease(id int64) bool {
	_, ok := slices.BinarySearch(s.Leases, id)
	return ok
}

func find(keys []KV, key string) (int, bool) {
	i := sort.Search(len(keys), func(i int) bool { return keys[i].Key >= key })
	return i, i < len(keys) && keys[i].Key == key
}

func (s *State) modRev(key string) int64 {
	if i, ok := find(s.Keys, key); ok {
		return s.Keys[i].ModRev
	}
	return 0
}

// write applies the writes of one request at the next revision and
// returns the new state and how many keys were deleted. As in etcd, a
// request that changes nothing (only deletes of absent keys) leaves the
// revision where it was; one with a put always moves it by one, however
// many keys it writes.
func (s *State) write(ops []TxnOp) (*State, int64) {
	rev := s.Revision + 1
	var keys []KV // a copy of s.Keys, made at the first change
	var deleted int64
	for _, op := range ops {
		cur := keys
		if cur == nil {
			cur = s.Keys
		}
		i, ok := find(cur, op.Key)
		if op.Kind == OpDelete && !ok {
			continue
		}
		if keys == nil {
			keys = append(make([]KV, 0, len(s.Keys)+len(ops)), s.Keys...)
		}
		switch {
		case op.Kind == OpDelete:
			keys = append(keys[:i], keys[i+1:]...)
			deleted++
		case ok:
			old := keys[i]
			keys[i] = KV{Key: op.Key, Value: op.Value, CreateRev: old.CreateRev, ModRev: rev, Version: old.Version + 1, Lease: op.Lease}
		default:
			keys = append(keys, KV{})
			copy(keys[i+1:], keys[i:])
			keys[i] = KV{Key: op.Key, Value: op.Value, CreateRev: rev, ModRev: rev, Version: 1, Lease: op.Lease}
		}
	}
	if keys == nil {
		return s, 0
	}
	return newState(rev, s.Compacted, keys, s.Leases), deleted
}

// readMatches says whether a read of key at this state returns out.
func (s *State) readMatches(key string, out Output) bool {
	if out.Revision != s.Revision {
		return false
	}
	i, ok := find(s.Keys, key)
	if !ok {
		return !out.Found
	}
	k := s.Keys[i]
	return out.Found && out.Value == k.Value && out.ModRev == k.ModRev &&
		out.CreateRev == k.CreateRev && out.Version == k.Version && out.Lease == k.Lease
}

// rangeMatches says whether a read of [key, end) limited to limit keys
// (0: all) returns out at this state. As in etcd, Count is the number of
// keys in the range whatever the limit, and More says the limit cut the
// answer short.
func (s *State) rangeMatches(key, end string, limit int64, out Output) bool {
	if out.Revision != s.Revision {
		return false
	}
	lo, _ := find(s.Keys, key)
	hi, _ := find(s.Keys, end)
	if hi < lo {
		hi = lo
	}
	count := int64(hi - lo)
	want := s.Keys[lo:hi]
	if limit > 0 && count > limit {
		want = want[:limit]
	}
	if out.Count != count || out.More != (int64(len(want)) < count) || len(out.KVs) != len(want) {
		return false
	}
	for i := range want {
		if out.KVs[i] != want[i] {
			return false
		}
	}
	return true
}

// compact returns the state after a successful compaction at rev.
func (s *State) compact(rev int64) *State {
	return newState(s.Revision, rev, s.Keys, s.Leases)
}

// canCompact says whether a compaction at rev would succeed. etcd and
// kvd check "already compacted" before "future".
func (s *State) canCompact(rev int64) bool {
	return rev > s.Compacted && rev <= s.Revision
}

// step applies in to s and says whether out is a possible response.
//
// A request that failed on the client side (Output.Err set) may or may
// not have taken effect. The recorder gives such an operation an
// infinite return time, so porcupine may linearize it anywhere after its
// call, including after every other operation, which is the same as it
// never happening. The step itself therefore only has to accept the
// "it happened" outcome, with whatever response.
func step(s *State, in Input, out Output) (bool, *State) {
	failed := out.Err != ""
	switch in.Kind {
	case OpPut:
		if in.LeaseID != 0 && !s.hasLease(in.LeaseID) {
			return failed || out.LeaseErr == LeaseNotFound, s
		}
		next, _ := s.write([]TxnOp{{Kind: OpPut, Key: in.Key, Value: in.Value, Lease: in.LeaseID}})
		return failed || (out.LeaseErr == "" && out.Revision == next.Revision), next
	case OpGrant, OpRevoke, OpKeepAlive:
		return stepLease(s, in, out)
	case OpAlarm:
		return failed || out.Alarms == 0, s
	case OpGet:
		// Failed reads are dropped from the history before checking;
		// accept one here all the same, as it changes nothing.
		return failed || s.readMatches(in.Key, out), s
	case OpRange:
		return failed || s.rangeMatches(in.Key, in.End, in.Limit, out), s
	case OpDelete:
		next, n := s.write([]TxnOp{{Kind: OpDelete, Key: in.Key}})
		return failed || (out.Deleted == n && out.Revision == next.Revision), next
	case OpTxn:
		if s.modRev(in.Key) == in.ExpectModRev {
			next, _ := s.write([]TxnOp{{Kind: OpPut, Key: in.Key, Value: in.Value}})
			return failed || (out.Succeeded && out.Revision == next.Revision), next
		}
		return failed || (!out.Succeeded && s.readMatches(in.Key, out)), s
	case OpMultiTxn:
		for _, c := range in.Cmps {
			if s.modRev(c.Key) != c.ModRev {
				return failed || (!out.Succeeded && s.rangeMatches(in.Key, in.End, in.Limit, out)), s
			}
		}
		next, n := s.write(in.Then)
		return failed || (out.Succeeded && out.Deleted == n && out.Revision == next.Revision), next
	case OpCompact:
		// Compaction changes neither the keys nor the revision; the
		// response header carries the current revision. The model only
		// tracks how far history was compacted, so that a second
		// compaction at or below that revision must be refused.
		ok := s.canCompact(in.Revision)
		switch {
		case failed:
			if ok {
				return true, s.compact(in.Revision)
			}
			return true, s
		case out.CompactErr == CompactedErr:
			return in.Revision <= s.Compacted, s
		case out.CompactErr == FutureErr:
			return in.Revision > s.Compacted && in.Revision > s.Revision, s
		case out.CompactErr != "":
			return false, s
		}
		if !ok || out.Revision != s.Revision {
			return false, s
		}
		return true, s.compact(in.Revision)
	}
	panic(fmt.Sprintf("unknown operation kind %q", in.Kind))
}

// Model returns the porcupine model of a store whose revision is
// initialRevision, never compacted, and which holds no keys when the
// history starts (a new etcd or kvd store is at revision 1).
//
// The model must not be partitioned by key: every write moves the one
// global revision, which every response reports.
func Model(initialRevision int64) porcupine.Model {
	return porcupine.Model{
		Init: func() interface{} { return newState(initialRevision, 0, nil, nil) },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			return step(state.(*State), input.(Input), output.(Output))
		},
		Hash: func(state interface{}) uint64 { return state.(*State).hash },
		Equal: func(a, b interface{}) bool {
			sa, sb := a.(*State), b.(*State)
			if sa == sb {
				return true
			}
			if sa.hash != sb.hash || sa.Revision != sb.Revision || sa.Compacted != sb.Compacted ||
				len(sa.Keys) != len(sb.Keys) || !slices.Equal(sa.Leases, sb.Leases) {
				return false
			}
			for i := range sa.Keys {
				if sa.Keys[i] != sb.Keys[i] {
					return false
				}
			}
			return true
		},
		DescribeOperation: func(input, output interface{}) string {
			return describe(input.(Input), output.(Output))
		},
		DescribeState: func(state interface{}) string {
			s := state.(*State)
			var b strings.Builder
			fmt.Fprintf(&b, "rev=%d compacted=%d leases=%x {", s.Revision, s.Compacted, s.Leases)
			for i, k := range s.Keys {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(describeKV(k))
			}
			b.WriteString("}")
			return b.String()
		},
	}
}
