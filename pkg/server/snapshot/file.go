// Package snapshot works on database snapshot files offline, while no
// member has them open: it reports what a file holds (Status) and builds a
// new member's data dir from one (Restore). kvctl's `snapshot status` and
// `snapshot restore` are thin commands over it, as etcdutl's are over
// etcd's server packages.
//
// A snapshot file is a database file as Maintenance.Snapshot streams it,
// followed by the SHA-256 of the database bytes; a database copied from a
// data dir has no digest and is accepted only when the caller says to skip
// the check. Nothing here trusts a file before it has been checked: the
// digest, then the database's own page bounds, then its structure.
package snapshot

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrNoHash is returned for a file without a trailing digest when the
// check was not skipped; the text is etcdutl's.
var ErrNoHash = errors.New("snapshot missing hash but --skip-hash-check=false")

// hasDigest says whether a file of n bytes ends in a SHA-256: database
// files are whole pages, multiples of 512 bytes, so 32 bytes past such a
// multiple can only be the digest a snapshot stream appends.
func hasDigest(n int64) bool { return n%512 == sha256.Size }

// checked is a snapshot file that passed the checks.
type checked struct {
	path string
	// dbSize is the size of the database part, without the digest.
	dbSize int64
}

// check verifies the file at path: its digest unless skipHash (a missing
// digest is an error unless skipHash or allowNoHash), then that the
// database it holds is not cut short.
func check(path string, skipHash, allowNoHash bool) (*checked, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("snapshot %s is a directory", path)
	}
	c := &checked{path: path, dbSize: st.Size()}
	switch {
	case hasDigest(st.Size()):
		c.dbSize -= sha256.Size
		if !skipHash {
			if err := checkDigest(f, c.dbSize); err != nil {
				return nil, fmt.Errorf("snapshot %s is corrupted or truncated: %w", path, err)
			}
		}
	case !skipHash && !allowNoHash:
		if st.Size()%512 != 0 {
			return nil, fmt.Errorf("snapshot %s is truncated or not a snapshot: %d bytes is neither whole database pages nor pages followed by a SHA-256", path, st.Size())
		}
		return nil, ErrNoHash
	}
	if err := checkPages(f, c.dbSize); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", path, err)
	}
	return c, nil
}

// checkDigest compares the SHA-256 of the first n bytes of f with the
// digest that follows them.
func checkDigest(f *os.File, n int64) error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, n)); err != nil {
		return fmt.Errorf("read database: %w", err)
	}
	want := make([]byte, sha256.Size)
	if _, err := f.ReadAt(want, n); err != nil {
		return fmt.Errorf("read digest: %w", err)
	}
	if got := h.Sum(nil); string(got) != string(want) {
		return fmt.Errorf("SHA-256 of the database is %x, the file records %x", got, want)
	}
	return nil
}
