package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Defragmentation rewrites the database into a new, compact file while the
// member keeps serving. A journal records every write made from the moment
// the copy starts; the copy runs in short read transactions; the journal is
// replayed into the new file in rounds until what is left is small; only the
// last round and the swap hold the writer lock.

// defragSuffix names the file a defrag builds beside the database. One left
// behind by a crash is incomplete and is removed at open.
const defragSuffix = ".defrag"

const (
	// A copy chunk ends after this many bytes or this long, whichever
	// comes first, so that its read transaction never holds back a
	// commit that must grow the old file's mapping for long.
	chunkBytes = 2 << 20
	chunkTime  = 20 * time.Millisecond
	// After each chunk the copy rests for 1/restFraction of the time
	// the chunk took, leaving the CPU and the disk to the requests served
	// meanwhile on a small machine.
	restFraction = 2
	// Catch-up rounds stop once a round has replayed no more than this
	// many changes, or after maxRounds rounds when writes outpace them.
	smallRound = 512
	maxRounds  = 16
)

// ErrDefragAborted is returned when the database was replaced or closed
// while a defrag was building its copy; the database is unchanged.
var ErrDefragAborted = errors.New("defrag aborted: database replaced or closed meanwhile")

// DefragStats describes one defrag.
type DefragStats struct {
	SizeBefore, SizeAfter int64
	// Copy is how long copying the committed database took; Total the
	// whole defrag; Pause how long readers and writers were held back
	// at the swap.
	Copy, Total, Pause time.Duration
	// Rounds of catch-up before the swap, and changes replayed by them
	// and by the swap.
	Rounds, Replayed int
}

// change is one write recorded by the journal.
type change struct {
	bucket     string
	key, value []byte
	del        bool
}

// journal collects the writes made while a defrag runs; it is guarded by
// Backend.mu, which every writer holds.
type journal struct {
	on      bool
	changes []change
	// gen counts Replace calls, so a defrag notices its source vanished.
	gen uint64
}

func (j *journal) put(bucket, key, value []byte) {
	if j.on {
		j.changes = append(j.changes, change{bucket: string(bucket), key: bytes.Clone(key), value: bytes.Clone(value)})
	}
}

func (j *journal) del(bucket, key []byte) {
	if j.on {
		j.changes = append(j.changes, change{bucket: string(bucket), key: bytes.Clone(key), del: true})
	}
}

func (j *journal) take() []change {
	c := j.changes
	j.changes = nil
	return c
}

func (j *journal) stop() {
	j.on = false
	j.changes = nil
}

// removeDefragLeftover deletes the copy an interrupted defrag left behind:
// the rename is the only switch, so such a file never holds the data.
func removeDefragLeftover(path string) error {
	err := os.Remove(path + defragSuffix)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove defrag leftover %s: %w", path+defragSuffix, err)
	}
	return nil
}

// Defrag rewrites the database into a compact file and switches to it.
// Reads and writes go on during the copy; they wait only for the last
// catch-up round and the swap. A crash at any point leaves either the old
// file or the complete new one in place.
func (b *Backend) Defrag(ctx context.Context) (DefragStats, error) {
	b.defragMu.Lock()
	defer b.defragMu.Unlock()
	var st DefragStats
	start := time.Now()
	tmp := b.cfg.Path + defragSuffix
	if err := removeDefragLeftover(b.cfg.Path); err != nil {
		return st, err
	}
	ndb, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: true, NoGrowSync: true, Timeout: 5 * time.Second, InitialMmapSize: initialMmapSize})
	if err != nil {
		return st, fmt.Errorf("create defrag file %s: %w", tmp, err)
	}
	gen, err := b.startJournal(&st)
	if err != nil {
		return st, errors.Join(err, discard(ndb, tmp))
	}
	fail := func(err error) (DefragStats, error) {
		b.mu.Lock()
		if b.j.gen == gen {
			b.j.stop()
		}
		b.mu.Unlock()
		return st, errors.Join(err, discard(ndb, tmp))
	}
	if err := b.copyAll(ctx, ndb, gen); err != nil {
		return fail(err)
	}
	st.Copy = time.Since(start)
	for {
		changes, err := b.takeJournal(ctx, gen)
		if err != nil {
			return fail(err)
		}
		if err := replay(ndb, changes); err != nil {
			return fail(err)
		}
		st.Replayed += len(changes)
		st.Rounds++
		if len(changes) <= smallRound || st.Rounds >= maxRounds {
			break
		}
	}
	// Flush the bulk of the copy now, so the swap's commit has only its
	// own few pages to sync.
	if err := ndb.Sync(); err != nil {
		return fail(fmt.Errorf("sync defrag file %s: %w", tmp, err))
	}
	if err := b.swap(ndb, tmp, gen, &st); err != nil {
		return fail(err)
	}
	st.Total = time.Since(start)
	return st, nil
}

// startJournal commits what is pending, so that every later read
// transaction sees at least the state the journal starts from, and turns
// the journal on.
func (b *Backend) startJournal(st *DefragStats) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped() {
		return 0, ErrDefragAborted
	}
	if b.pending > 0 {
		b.commitLocked()
	}
	st.SizeBefore = b.tx.Size()
	b.j.stop()
	b.j.on = true
	return b.j.gen, nil
}

func (b *Backend) takeJournal(ctx context.Context, gen uint64) ([]change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.j.gen != gen || b.stopped() {
		return nil, ErrDefragAborted
	}
	return b.j.take(), nil
}

func (b *Backend) aborted(gen uint64) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.j.gen != gen || b.stopped()
}

func (b *Backend) stopped() bool {
	select {
	case <-b.stopc:
		return true
	default:
		return false
	}
}

// copyAll copies every bucket, chunk by chunk. Each chunk reads a state at
// least as new as the journal's start, and the journal holds every change
// made after that start, so replaying it over the chunks in order yields
// the live database whatever each chunk saw.
func (b *Backend) copyAll(ctx context.Context, ndb *bolt.DB, gen uint64) error {
	var names [][]byte
	err := b.readCommitted(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, bytes.Clone(name))
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		var from []byte
		for first := true; first || from != nil; first = false {
			if err := ctx.Err(); err != nil {
				return err
			}
			if b.aborted(gen) {
				return ErrDefragAborted
			}
			chunkStart := time.Now()
			if from, err = b.copyChunk(ndb, name, from); err != nil {
				return err
			}
			// Write each chunk out now: left to pile up in the page
			// cache, the copy is flushed all at once at the end, and
			// the member's WAL and batch syncs queue behind it for as
			// long as that takes.
			if err := ndb.Sync(); err != nil {
				return fmt.Errorf("sync defrag file: %w", err)
			}
			time.Sleep(time.Since(chunkStart) / restFraction)
			if b.afterChunk != nil {
				b.afterChunk()
			}
		}
	}
	return nil
}

// copyChunk copies bucket name from key from on, and returns the key the
// next chunk starts at, nil when the bucket is done.
func (b *Backend) copyChunk(ndb *bolt.DB, name, from []byte) (next []byte, err error) {
	err = b.readCommitted(func(rtx *bolt.Tx) error {
		wtx, err := ndb.Begin(true)
		if err != nil {
			return fmt.Errorf("begin defrag copy: %w", err)
		}
		defer func() { _ = wtx.Rollback() }()
		dst, err := wtx.CreateBucketIfNotExists(name)
		if err != nil {
			return fmt.Errorf("create bucket %s in defrag file: %w", name, err)
		}
		// Keys arrive in order: full pages, no room kept for inserts.
		dst.FillPercent = 1.0
		src := rtx.Bucket(name)
		if src == nil {
			return wtx.Commit()
		}
		c := src.Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		deadline := time.Now().Add(chunkTime)
		n, keys := 0, 0
		for ; k != nil; k, v = c.Next() {
			if n >= chunkBytes || (keys > 0 && keys%256 == 0 && time.Now().After(deadline)) {
				next = bytes.Clone(k)
				break
			}
			if err := dst.Put(k, v); err != nil {
				return fmt.Errorf("copy into bucket %s: %w", name, err)
			}
			n += len(k) + len(v)
			keys++
		}
		// Commit while the read transaction still maps the values Put
		// refers to.
		if err := wtx.Commit(); err != nil {
			return fmt.Errorf("commit defrag copy: %w", err)
		}
		return nil
	})
	return next, err
}

// readCommitted runs fn in a read transaction of the committed database.
func (b *Backend) readCommitted(fn func(*bolt.Tx) error) error {
	b.mu.RLock()
	tx, err := b.db.Begin(false)
	b.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("begin defrag read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// replay applies changes to ndb in one transaction.
func replay(ndb *bolt.DB, changes []change) error {
	if len(changes) == 0 {
		return nil
	}
	err := ndb.Update(func(tx *bolt.Tx) error {
		bkts := map[string]*bolt.Bucket{}
		for _, c := range changes {
			bk := bkts[c.bucket]
			if bk == nil {
				var err error
				if bk, err = tx.CreateBucketIfNotExists([]byte(c.bucket)); err != nil {
					return err
				}
				bkts[c.bucket] = bk
			}
			var err error
			if c.del {
				err = bk.Delete(c.key)
			} else {
				err = bk.Put(c.key, c.value)
			}
			if err != nil {
				return fmt.Errorf("bucket %s: %w", c.bucket, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay writes into defrag file: %w", err)
	}
	return nil
}

// swap holds the writer lock while it replays the journal's rest into
// ndb, syncs it, renames it over the database and makes it the live file.
// The old file's uncommitted batch is in the journal, so it is dropped.
// Read transactions still open on the old file (snapshots streaming) keep
// its mapping; it is closed once they end.
func (b *Backend) swap(ndb *bolt.DB, tmp string, gen uint64, st *DefragStats) error {
	b.mu.Lock()
	locked := time.Now()
	defer func() {
		st.Pause = time.Since(locked)
		b.mu.Unlock()
	}()
	if b.j.gen != gen || b.stopped() {
		return ErrDefragAborted
	}
	// The old file's batch is dropped, not committed: what its commit
	// would have added goes through the journal like every other write.
	if err := b.runPreCommit(); err != nil {
		return err
	}
	changes := b.j.take()
	ndb.NoSync, ndb.NoGrowSync = false, false
	if err := replay(ndb, changes); err != nil {
		return err
	}
	st.Replayed += len(changes)
	if err := os.Rename(tmp, b.cfg.Path); err != nil {
		return fmt.Errorf("move %s over %s: %w", tmp, b.cfg.Path, err)
	}
	b.j.stop()
	// From here the new file is the database whatever happens.
	dirErr := syncDir(b.cfg.Path)
	old := b.db
	_ = b.tx.Rollback()
	b.db, b.pending = ndb, 0
	if err := b.begin(); err != nil {
		b.lg.Error("begin batch on defragmented database; stopping", "err", err)
		os.Exit(1)
	}
	st.SizeAfter = b.tx.Size()
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		if err := old.Close(); err != nil {
			b.lg.Warn("close database replaced by defrag", "err", err)
		}
	}()
	if dirErr != nil {
		b.lg.Warn("sync directory after defrag; the switch may not survive a power loss", "err", dirErr)
	}
	return nil
}

// discard closes and removes an unfinished defrag file.
func discard(ndb *bolt.DB, tmp string) error {
	err := ndb.Close()
	if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
