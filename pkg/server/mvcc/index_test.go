package mvcc

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestKeyIndexGenerations(t *testing.T) {
	ki := &keyIndex{key: []byte("k")}
	ki.put(Revision{Main: 2})
	ki.put(Revision{Main: 4, Sub: 1})
	ki.tombstone(Revision{Main: 6})
	ki.put(Revision{Main: 8})
	tests := []struct {
		rev          int64
		mod, created int64
		ver          int64
		ok           bool
	}{
		{1, 0, 0, 0, false},
		{2, 2, 2, 1, true},
		{3, 2, 2, 1, true},
		{5, 4, 2, 2, true},
		{6, 0, 0, 0, false},
		{7, 0, 0, 0, false},
		{8, 8, 8, 1, true},
		{100, 8, 8, 1, true},
	}
	for _, tt := range tests {
		mod, created, ver, ok := ki.at(tt.rev)
		if ok != tt.ok || mod.Main != tt.mod || created.Main != tt.created || ver != tt.ver {
			t.Errorf("at(%d) = mod %d created %d ver %d ok %v; want %d %d %d %v", tt.rev, mod.Main, created.Main, ver, ok, tt.mod, tt.created, tt.ver, tt.ok)
		}
	}

	keep := map[Revision]struct{}{}
	if !ki.compact(5, keep) {
		t.Fatal("key with live history reported empty")
	}
	if _, kept := keep[Revision{Main: 4, Sub: 1}]; !kept || len(keep) != 1 {
		t.Fatalf("compact(5) keeps %v, want only 4.1", keep)
	}
	if _, _, ver, ok := ki.at(5); !ok || ver != 2 {
		t.Fatalf("after compaction at(5) ver %d ok %v", ver, ok)
	}
	keep = map[Revision]struct{}{}
	ki.compact(7, keep)
	if len(keep) != 0 || len(ki.gens) != 1 {
		t.Fatalf("compact(7) keeps %v with %d generations; the deleted life must go", keep, len(ki.gens))
	}
}

func TestTreeIndexAscend(t *testing.T) {
	ti := newTreeIndex()
	for i, k := range []string{"a", "b", "c", "d"} {
		ti.getOrCreate([]byte(k)).put(Revision{Main: int64(i + 2)})
	}
	tests := []struct {
		key, end string
		want     string
	}{
		{"b", "", "b"},
		{"b", "d", "bc"},
		{"b", "\x00", "bcd"},
		{"\x00", "\x00", "abcd"},
		{"x", "", ""},
	}
	for _, tt := range tests {
		got := ""
		ti.ascend([]byte(tt.key), endOf(tt.end), func(ki *keyIndex) bool { got += string(ki.key); return true })
		if got != tt.want {
			t.Errorf("ascend(%q, %q) = %q, want %q", tt.key, tt.end, got, tt.want)
		}
	}
}

// The tree orders keys exactly as bytes.Compare does, whatever their
// lengths and wherever they first differ, inside the eight bytes kept in
// each item or beyond them.
func TestIndexItemOrderIsByteOrder(t *testing.T) {
	keys := [][]byte{
		{}, {0}, {0, 0}, []byte("a"), []byte("a\x00"), []byte("a\x00\x00"), []byte("ab"),
		[]byte("abcdefgh"), []byte("abcdefgh\x00"), []byte("abcdefghi"), []byte("abcdefgi"),
		[]byte("abcdefg"), []byte("abcdefg\xff"), {0xff}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		[]byte("/registry/pods/a"), []byte("/registry/pods/b"), []byte("/registry/pod"),
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		k := make([]byte, rng.IntN(12))
		for i := range k {
			k[i] = byte(rng.IntN(3)) // few byte values: many shared heads and zero bytes
		}
		keys = append(keys, k)
	}
	for _, a := range keys {
		for _, b := range keys[:40] {
			want := bytes.Compare(a, b) < 0
			if got := lessItem(itemOf(a, nil), itemOf(b, nil)); got != want {
				t.Fatalf("less(%q, %q) = %v, want %v", a, b, got, want)
			}
		}
	}
	ti := newTreeIndex()
	for _, k := range keys {
		ti.getOrCreate(k)
	}
	var got [][]byte
	ti.each(func(ki *keyIndex) bool { got = append(got, ki.key); return true })
	want := slices.Clone(keys)
	slices.SortFunc(want, bytes.Compare)
	want = slices.CompactFunc(want, bytes.Equal)
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("tree holds %d keys out of order or lost some; want %d", len(got), len(want))
	}
	for _, k := range want {
		if ki := ti.get(k); ki == nil || !bytes.Equal(ki.key, k) {
			t.Fatalf("get(%q) = %v", k, ki)
		}
	}
}
