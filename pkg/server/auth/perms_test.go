package auth

import "testing"

func TestSpansCover(t *testing.T) {
	open := []byte{0}
	set := merge([]span{
		spanOf([]byte("/a"), nil),                  // the key /a
		spanOf([]byte("/b/"), []byte("/b0")),       // the prefix /b/
		spanOf([]byte("/b0"), []byte("/b5")),       // touching it: one interval /b/ to /b5
		spanOf([]byte("/d"), []byte("/f")),         // [/d, /f)
		spanOf([]byte("/e"), []byte("/g")),         // overlapping it: [/d, /g)
		spanOf([]byte("/z"), open),                 // every key from /z on
		spanOf([]byte("/y"), []byte("/y\x00\x00")), // a short range below it
	})
	tests := []struct {
		key, end string
		want     bool
	}{
		{"/a", "", true},
		{"/a0", "", false},
		{"/", "", false},
		{"/b/x", "", true},
		{"/b/", "/b0", true},
		{"/b/", "/b5", true},
		{"/b/", "/b6", false},
		{"/b", "/b0", false},
		{"/d", "/g", true},
		{"/d", "/g\x00", false},
		{"/e", "/f", true},
		{"/c", "/e", false},
		{"/z", "\x00", true},
		{"/zz", "", true},
		{"/y", "\x00", false},
		{"/a", "/b", false},
	}
	for _, tt := range tests {
		if got := set.covers(spanOf([]byte(tt.key), []byte(tt.end))); got != tt.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tt.key, tt.end, got, tt.want)
		}
	}
}

func TestValidRange(t *testing.T) {
	tests := []struct {
		key, end string
		want     bool
	}{
		{"", "", false},
		{"a", "", true},
		{"a", "\x00", true},
		{"a", "b", true},
		{"b", "a", false},
		{"a", "a", false},
	}
	for _, tt := range tests {
		if got := validRange([]byte(tt.key), []byte(tt.end)); got != tt.want {
			t.Errorf("validRange(%q, %q) = %v, want %v", tt.key, tt.end, got, tt.want)
		}
	}
}

// holds is covers for one key, without building its span.
func TestHoldsIsCoversOfOneKey(t *testing.T) {
	set := merge([]span{
		spanOf([]byte("/a"), nil),
		spanOf([]byte("/b/"), []byte("/b0")),
		spanOf([]byte("/z"), []byte{0}),
	})
	for _, k := range []string{"/", "/a", "/a\x00", "/a0", "/b/", "/b/x", "/b0", "/y", "/z", "/zz", "\xff"} {
		if got, want := set.holds([]byte(k)), set.covers(spanOf([]byte(k), nil)); got != want {
			t.Errorf("holds(%q) = %v, covers of the key = %v", k, got, want)
		}
	}
}
