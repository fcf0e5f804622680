package mvcc

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func rangeWatcher(key, end string) *watcher {
	return &watcher{WatchOptions: WatchOptions{Key: []byte(key), End: []byte(end)}}
}

// stabbed lists, sorted, the indexes in ws of the watchers ix finds for key.
func stabbed(ix *rangeIndex, ws []*watcher, key string) []int {
	got := []int{}
	ix.stab([]byte(key), func(wt *watcher) { got = append(got, slices.Index(ws, wt)) })
	slices.Sort(got)
	return got
}

func TestRangeIndexFindsRangesHoldingKey(t *testing.T) {
	type probe struct {
		key  string
		want []int
	}
	tests := []struct {
		name    string
		ranges  [][2]string // key, end
		removed []int
		probes  []probe
	}{
		{
			name:   "overlapping",
			ranges: [][2]string{{"a", "m"}, {"f", "z"}, {"c", "g"}, {"x", "y"}},
			probes: []probe{{"a", []int{0}}, {"c", []int{0, 2}}, {"f", []int{0, 1, 2}}, {"g", []int{0, 1}},
				{"m", []int{1}}, {"x", []int{1, 3}}, {"y", []int{1}}, {"z", []int{}}, {"", []int{}}},
		},
		{
			name:   "prefixes, nested",
			ranges: [][2]string{{"a/", "a0"}, {"a/b/", "a/b0"}, {"a/b/c", "a/b/d"}, {"b/", "b0"}},
			probes: []probe{{"a/", []int{0}}, {"a/b/c1", []int{0, 1, 2}}, {"a/b/x", []int{0, 1}},
				{"a0", []int{}}, {"a/c", []int{0}}, {"b/", []int{3}}, {"a", []int{}}},
		},
		{
			name:   "from key",
			ranges: [][2]string{{"k", "\x00"}, {"", "\x00"}, {"a", "l"}},
			probes: []probe{{"", []int{1}}, {"a", []int{1, 2}}, {"k", []int{0, 1, 2}}, {"\xff\xff", []int{0, 1}}, {"j", []int{1, 2}}},
		},
		{
			name:   "same range shared",
			ranges: [][2]string{{"p/", "p0"}, {"p/", "p0"}, {"p/", "p0"}, {"p/", "\x00"}},
			probes: []probe{{"p/1", []int{0, 1, 2, 3}}, {"q", []int{3}}},
		},
		{
			name:    "removal",
			ranges:  [][2]string{{"p/", "p0"}, {"p/", "p0"}, {"a", "z"}, {"k", "\x00"}, {"c", "d"}},
			removed: []int{0, 2, 4},
			probes:  []probe{{"p/1", []int{1, 3}}, {"c", []int{}}, {"l", []int{3}}},
		},
		{
			name:    "everything removed",
			ranges:  [][2]string{{"a", "b"}, {"a", "\x00"}},
			removed: []int{1, 0},
			probes:  []probe{{"a", []int{}}},
		},
		{
			name:   "empty range holds nothing",
			ranges: [][2]string{{"m", "c"}},
			probes: []probe{{"c", []int{}}, {"m", []int{}}, {"n", []int{}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ix rangeIndex
			ws := make([]*watcher, len(tt.ranges))
			for i, r := range tt.ranges {
				ws[i] = rangeWatcher(r[0], r[1])
				ix.add(ws[i])
			}
			for _, i := range tt.removed {
				ix.remove(ws[i])
			}
			for _, p := range tt.probes {
				if got := stabbed(&ix, ws, p.key); !slices.Equal(got, p.want) {
					t.Errorf("key %q: watchers %v, want %v", p.key, got, p.want)
				}
			}
		})
	}
}

// Many random adds and removals: the index finds exactly the watchers
// whose range holds each key, as checking them one by one does.
func TestRangeIndexAgreesWithScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	key := func() string { return fmt.Sprintf("%02d", r.IntN(40)) }
	var ix rangeIndex
	var live []*watcher
	for step := range 4000 {
		if len(live) > 0 && r.IntN(3) == 0 {
			i := r.IntN(len(live))
			ix.remove(live[i])
			live = slices.Delete(live, i, i+1)
		} else {
			a, b := key(), key()
			if r.IntN(5) == 0 {
				b = "\x00"
			} else if b < a {
				a, b = b, a
			}
			wt := rangeWatcher(a, b)
			ix.add(wt)
			live = append(live, wt)
		}
		if step%50 != 0 {
			continue
		}
		for k := range 41 {
			probe := fmt.Sprintf("%02d", k)
			want := []int{}
			for i, wt := range live {
				if wt.matches([]byte(probe)) {
					want = append(want, i)
				}
			}
			if got := stabbed(&ix, live, probe); !slices.Equal(got, want) {
				t.Fatalf("step %d key %q: watchers %v, want %v", step, probe, got, want)
			}
		}
	}
}
