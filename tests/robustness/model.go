// Package robustness checks that kvd stays linearizable, with etcd's
// revision semantics, while faults are injected into a running cluster.
//
// Client workers record every request they make (history.go); the
// recorded history is then checked against a sequential model of the
// key-value store (this file) with porcupine.
package robustness

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// OpKind names a request type of the model.
type OpKind string

const (
	OpPut    OpKind = "put"
	OpGet    OpKind = "get"
	OpDelete OpKind = "delete"
	// OpTxn is "if mod_revision(Key) == ExpectModRev then put(Key, Value)
	// else get(Key)".
	OpTxn OpKind = "txn"
)

// Input is one request as the client sent it.
type Input struct {
	Kind         OpKind `json:"kind"`
	Key          string `json:"key"`
	Value        string `json:"value,omitempty"`
	ExpectModRev int64  `json:"expectModRev,omitempty"`
}

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

	// Delete.
	Deleted int64 `json:"deleted,omitempty"`

	// Txn.
	Succeeded bool `json:"succeeded,omitempty"`
}

// keyState is one live key in the model.
type keyState struct {
	Key       string
	Value     string
	CreateRev int64
	ModRev    int64
	Version   int64
}

// State is the model's state: the store's revision and its live keys,
// sorted by key. States are never changed once built; a step makes a new
// one. The hash is computed once, when the state is built, so that
// porcupine's cache lookups cost little.
type State struct {
	Revision int64
	Keys     []keyState
	hash     uint64
}

func newState(rev int64, keys []keyState) *State {
	s := &State{Revision: rev, Keys: keys}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d;", rev)
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s/%d/%d/%d;", k.Key, k.Value, k.CreateRev, k.ModRev, k.Version)
	}
	s.hash = h.Sum64()
	return s
}

func (s *State) find(key string) (int, bool) {
	i := sort.Search(len(s.Keys), func(i int) bool { return s.Keys[i].Key >= key })
	return i, i < len(s.Keys) && s.Keys[i].Key == key
}

// put returns the state after writing key=value at the next revision.
func (s *State) put(key, value string) *State {
	rev := s.Revision + 1
	i, ok := s.find(key)
	keys := make([]keyState, 0, len(s.Keys)+1)
	keys = append(keys, s.Keys[:i]...)
	if ok {
		old := s.Keys[i]
		keys = append(keys, keyState{Key: key, Value: value, CreateRev: old.CreateRev, ModRev: rev, Version: old.Version + 1})
		keys = append(keys, s.Keys[i+1:]...)
	} else {
		keys = append(keys, keyState{Key: key, Value: value, CreateRev: rev, ModRev: rev, Version: 1})
		keys = append(keys, s.Keys[i:]...)
	}
	return newState(rev, keys)
}

// del returns the state after deleting key and how many keys went; a
// delete of an absent key changes nothing, not even the revision.
func (s *State) del(key string) (*State, int64) {
	i, ok := s.find(key)
	if !ok {
		return s, 0
	}
	keys := make([]keyState, 0, len(s.Keys)-1)
	keys = append(keys, s.Keys[:i]...)
	keys = append(keys, s.Keys[i+1:]...)
	return newState(s.Revision+1, keys), 1
}

// readMatches says whether a read of key at this state returns out.
func (s *State) readMatches(key string, out Output) bool {
	if out.Revision != s.Revision {
		return false
	}
	i, ok := s.find(key)
	if !ok {
		return !out.Found
	}
	k := s.Keys[i]
	return out.Found && out.Value == k.Value && out.ModRev == k.ModRev &&
		out.CreateRev == k.CreateRev && out.Version == k.Version
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
		next := s.put(in.Key, in.Value)
		return failed || out.Revision == next.Revision, next
	case OpGet:
		// Failed reads are dropped from the history before checking;
		// accept one here all the same, as it changes nothing.
		return failed || s.readMatches(in.Key, out), s
	case OpDelete:
		next, n := s.del(in.Key)
		return failed || (out.Deleted == n && out.Revision == next.Revision), next
	case OpTxn:
		var modRev int64
		if i, ok := s.find(in.Key); ok {
			modRev = s.Keys[i].ModRev
		}
		if modRev == in.ExpectModRev {
			next := s.put(in.Key, in.Value)
			return failed || (out.Succeeded && out.Revision == next.Revision), next
		}
		return failed || (!out.Succeeded && s.readMatches(in.Key, out)), s
	}
	panic(fmt.Sprintf("unknown operation kind %q", in.Kind))
}

// Model returns the porcupine model of a store whose revision is
// initialRevision and which holds no keys when the history starts (a new
// etcd or kvd store is at revision 1).
//
// The model must not be partitioned by key: every write moves the one
// global revision, which every response reports.
func Model(initialRevision int64) porcupine.Model {
	return porcupine.Model{
		Init: func() interface{} { return newState(initialRevision, nil) },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			return step(state.(*State), input.(Input), output.(Output))
		},
		Hash: func(state interface{}) uint64 { return state.(*State).hash },
		Equal: func(a, b interface{}) bool {
			sa, sb := a.(*State), b.(*State)
			if sa == sb {
				return true
			}
			if sa.hash != sb.hash || sa.Revision != sb.Revision || len(sa.Keys) != len(sb.Keys) {
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
			fmt.Fprintf(&b, "rev=%d {", s.Revision)
			for i, k := range s.Keys {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%s=%q c%d m%d v%d", k.Key, k.Value, k.CreateRev, k.ModRev, k.Version)
			}
			b.WriteString("}")
			return b.String()
		},
	}
}

func describe(in Input, out Output) string {
	var call string
	switch in.Kind {
	case OpPut:
		call = fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
	case OpGet:
		call = fmt.Sprintf("get(%s)", in.Key)
	case OpDelete:
		call = fmt.Sprintf("delete(%s)", in.Key)
	case OpTxn:
		call = fmt.Sprintf("txn(mod(%s)==%d ? put %q : get)", in.Key, in.ExpectModRev, in.Value)
	}
	if out.Err != "" {
		return call + " -> error (unknown outcome): " + out.Err
	}
	switch in.Kind {
	case OpPut:
		return fmt.Sprintf("%s -> rev %d", call, out.Revision)
	case OpDelete:
		return fmt.Sprintf("%s -> deleted %d, rev %d", call, out.Deleted, out.Revision)
	case OpTxn:
		if out.Succeeded {
			return fmt.Sprintf("%s -> succeeded, rev %d", call, out.Revision)
		}
	}
	if !out.Found {
		return fmt.Sprintf("%s -> absent, rev %d", call, out.Revision)
	}
	return fmt.Sprintf("%s -> %q c%d m%d v%d, rev %d", call, out.Value, out.CreateRev, out.ModRev, out.Version, out.Revision)
}
