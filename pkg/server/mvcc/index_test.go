package mvcc

import "testing"

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
