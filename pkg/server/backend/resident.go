package backend

import "sync/atomic"

// The database file is memory-mapped, and every page a read touches stays
// in the process's resident set until the kernel needs the memory back.
// After a pass over the whole file (the key index rebuilt at start, a
// client streaming the whole key space) kvd's RSS would so count the whole
// file, though the pages are the kernel's page cache, shared and
// reclaimable. Releasing them from the mapping after large reads keeps the
// resident set to what kvd itself holds: the pages stay cached, and a later
// read maps them again with a minor fault, without I/O.

// releaseAfter is how many bytes large reads may touch between two
// releases: the most of the file they add to the resident set.
const releaseAfter = 8 << 20

// residentReads counts the bytes of large reads since the last release.
type residentReads struct {
	n         atomic.Int64
	releasing atomic.Bool
}

// NoteRead tells the backend that a read handed out n bytes from the
// database, and releases the file's mapped pages once large reads have
// touched releaseAfter bytes since the last release. Callers note only
// reads large enough to matter, and never while inside Read or Write.
func (b *Backend) NoteRead(n int) {
	if b.reads.n.Add(int64(n)) < releaseAfter || !b.reads.releasing.CompareAndSwap(false, true) {
		return
	}
	b.reads.n.Store(0)
	b.ReleaseMapped()
	b.reads.releasing.Store(false)
}

// ReleaseMapped drops the database file's pages from the process's
// resident set; they stay in the kernel's page cache. It must not be
// called inside Read or Write.
func (b *Backend) ReleaseMapped() {
	// Writers hold mu while bbolt may remap the file, so the mapping is
	// stable while it is read-locked.
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return
	}
	if err := releaseMapped(b.db.Info().Data, b.tx.Size()); err != nil {
		b.lg.Debug("release the database's mapped pages", "error", err)
	}
}
