package backend

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// recorder is what the store does with the consistent index: it notes the
// last write and puts it into the batch only as the batch commits.
type recorder struct {
	last  string
	dirty bool
}

func (r *recorder) write(t *testing.T, b *Backend, k string) {
	t.Helper()
	err := b.Write(func(tx WriteTx) error {
		r.last, r.dirty = k, true
		return tx.Put(Key, []byte(k), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (r *recorder) preCommit(tx WriteTx) error {
	if !r.dirty {
		return nil
	}
	r.dirty = false
	return tx.Put(Meta, []byte("last"), []byte(r.last))
}

// committedMeta reads a meta record as a second reader of the file sees it.
func committedMeta(t *testing.T, db *bolt.DB, key string) string {
	t.Helper()
	var v string
	err := db.View(func(tx *bolt.Tx) error {
		if bk := tx.Bucket(Meta); bk != nil {
			v = string(bk.Get([]byte(key)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Whichever way a batch reaches the file, the pre-commit record of its
// last write goes with it: a member must never find writes on disk
// without the applied index that covers them.
func TestPreCommitRecordLandsWithItsBatch(t *testing.T) {
	tests := []struct {
		name string
		want string // the last write the batch holds
		// commit makes the batch holding "k2" durable and returns the
		// database as a second reader would open it.
		commit func(t *testing.T, b *Backend, r *recorder, path string) *bolt.DB
	}{
		{"ForceCommit", "k2", func(t *testing.T, b *Backend, _ *recorder, _ string) *bolt.DB {
			b.ForceCommit()
			return b.db
		}},
		{"batch limit", "k3", func(t *testing.T, b *Backend, r *recorder, _ string) *bolt.DB {
			r.write(t, b, "k3") // the third write of the batch fills it
			return b.db
		}},
		{"Close", "k2", func(t *testing.T, b *Backend, _ *recorder, path string) *bolt.DB {
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}},
		{"defrag swap", "k9", func(t *testing.T, b *Backend, r *recorder, _ string) *bolt.DB {
			var once sync.Once
			// A write lands in the old file's batch while the copy runs;
			// the swap drops that batch, so the record must come through
			// the journal.
			b.afterChunk = func() { once.Do(func() { r.write(t, b, "k9") }) }
			if _, err := b.Defrag(context.Background()); err != nil {
				t.Fatal(err)
			}
			return b.db
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			b := open(t, path, time.Hour, 3)
			t.Cleanup(func() {
				if tt.name != "Close" {
					b.Close()
				}
			})
			if tt.name == "defrag swap" {
				fill(t, b, 5000, 100)
			}
			r := &recorder{}
			b.SetPreCommit(r.preCommit)
			r.write(t, b, "k1")
			r.write(t, b, "k2")
			db := tt.commit(t, b, r, path)
			if got := committedMeta(t, db, "last"); got != tt.want {
				t.Fatalf("committed record of the last write = %q, want %q", got, tt.want)
			}
		})
	}
}
