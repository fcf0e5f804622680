package backend

import (
	"errors"
	"fmt"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// Snapshot writes a consistent copy of the committed database to w and
// returns its size. It runs in its own read transaction, so writers go on
// while a large file streams to a slow peer; commit first (ForceCommit)
// when the copy must hold everything applied so far.
func (b *Backend) Snapshot(w io.Writer) (int64, error) {
	snap, err := b.OpenSnapshot()
	if err != nil {
		return 0, err
	}
	defer snap.Close()
	return snap.WriteTo(w)
}

// DBSnapshot is the committed database frozen in a read transaction:
// what it says (Get) and the copy it writes (WriteTo) are the same
// state, however much is committed meanwhile.
type DBSnapshot struct {
	tx *bolt.Tx
}

// OpenSnapshot freezes the committed database until Close.
func (b *Backend) OpenSnapshot() (*DBSnapshot, error) {
	b.mu.RLock()
	tx, err := b.db.Begin(false)
	b.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("begin snapshot transaction: %w", err)
	}
	return &DBSnapshot{tx: tx}, nil
}

// Get reads key from bucket as of the snapshot; nil when absent.
func (s *DBSnapshot) Get(bucket, key []byte) []byte {
	bk := s.tx.Bucket(bucket)
	if bk == nil {
		return nil
	}
	return bk.Get(key)
}

// Size is the number of bytes WriteTo writes.
func (s *DBSnapshot) Size() int64 { return s.tx.Size() }

// WriteTo writes the database file as of the snapshot.
func (s *DBSnapshot) WriteTo(w io.Writer) (int64, error) {
	n, err := s.tx.WriteTo(w)
	if err != nil {
		return n, fmt.Errorf("write database snapshot: %w", err)
	}
	return n, nil
}

// Close ends the read transaction, which lets the database reuse the
// pages the snapshot kept alive.
func (s *DBSnapshot) Close() error { return s.tx.Rollback() }

// Replace swaps the database for the file at path, which becomes the
// backend's file: what is pending is committed first, then the old file is
// closed and the new one renamed over it. Readers and writers wait for the
// swap, which itself waits for a Snapshot still streaming from the old
// file.
func (b *Backend) Replace(path string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	// A defrag copying the old file must not swap it back in.
	b.j.stop()
	b.j.gen++
	if err := errors.Join(b.runPreCommit(), b.tx.Commit()); err != nil {
		return fmt.Errorf("commit before replacing database: %w", err)
	}
	b.pending = 0
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close database %s: %w", b.cfg.Path, err)
	}
	if err := os.Rename(path, b.cfg.Path); err != nil {
		return fmt.Errorf("move %s over %s: %w", path, b.cfg.Path, err)
	}
	db, err := openDB(b.cfg.Path)
	if err != nil {
		return err
	}
	b.db = db
	return b.begin()
}
