package backend

import (
	"path/filepath"
	"testing"
	"time"
)

// TestHash checks that the database hash sees keys and values, including
// ones still in the open batch, and not the applied index and term,
// which differ between members with the same data.
func TestHash(t *testing.T) {
	write := func(t *testing.T, kvs ...[3]string) uint32 {
		t.Helper()
		b := open(t, filepath.Join(t.TempDir(), "db"), time.Hour, 1000)
		defer b.Close()
		for _, kv := range kvs {
			if err := b.Write(func(tx WriteTx) error { return tx.Put([]byte(kv[0]), []byte(kv[1]), []byte(kv[2])) }); err != nil {
				t.Fatal(err)
			}
		}
		h, err := b.Hash()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	base := write(t, [3]string{"key", "a", "1"})
	tests := []struct {
		name string
		kvs  [][3]string
		same bool
	}{
		{"same data", [][3]string{{"key", "a", "1"}}, true},
		{"other applied index and term", [][3]string{{"key", "a", "1"}, {"meta", "consistent_index", "7"}, {"meta", "term", "3"}}, true},
		{"other value", [][3]string{{"key", "a", "2"}}, false},
		{"other key", [][3]string{{"key", "b", "1"}}, false},
		{"more meta", [][3]string{{"key", "a", "1"}, {"meta", "finishedCompactRev", "1"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := write(t, tc.kvs...); (got == base) != tc.same {
				t.Errorf("hash %#x, base %#x; want equal: %v", got, base, tc.same)
			}
		})
	}
}
