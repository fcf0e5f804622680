// Package backend is kvd's state-machine storage: one go.etcd.io/bbolt file
// written through a long-lived batch transaction that is committed on a
// timer or after a number of writes, never once per request.
//
// Readers read through the same open transaction, so they see applied but
// not yet committed writes without forcing a commit. A writer excludes
// readers only for the moment it changes the transaction.
package backend

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets kvd keeps in its database.
var (
	Key     = []byte("key")
	Meta    = []byte("meta")
	Members = []byte("members")
	Lease   = []byte("lease")
	// Auth holds whether auth is enabled and its revision; AuthUsers and
	// AuthRoles the users and roles, by name.
	Auth      = []byte("auth")
	AuthUsers = []byte("authUsers")
	AuthRoles = []byte("authRoles")
	// Alarm holds the active alarms, as etcd keeps them: each key is a
	// marshaled etcdserverpb.AlarmMember, with no value.
	Alarm   = []byte("alarm")
	buckets = [][]byte{Key, Meta, Members, Lease, Auth, AuthUsers, AuthRoles, Alarm}
)

// Config says where the database lives and how writes are batched.
type Config struct {
	Path          string
	BatchInterval time.Duration
	BatchLimit    int
	Logger        *slog.Logger
	// OnCommit, when set, is told how long each batch commit took.
	OnCommit func(time.Duration)
}

// PreCommit writes what must be durable together with a batch's other
// writes, such as the applied raft index, once per batch rather than once
// per write. It runs with the writer lock held.
type PreCommit func(WriteTx) error

// Backend is an open database.
type Backend struct {
	cfg Config
	db  *bolt.DB
	lg  *slog.Logger

	// mu guards tx: writers and the committer hold it exclusively,
	// readers shared. bbolt allows concurrent reads of a transaction
	// that nobody is writing to.
	mu        sync.RWMutex
	tx        *bolt.Tx
	bkts      map[string]*bolt.Bucket
	pending   int
	preCommit PreCommit
	// j records writes for a running defrag; defragMu lets one run at a
	// time; bg tracks the closing of files a defrag replaced.
	j        journal
	defragMu sync.Mutex
	// size is the committed database's size, set as each batch begins.
	size atomic.Int64
	bg   sync.WaitGroup
	// afterChunk, set by tests only, runs between two copy chunks.
	afterChunk func()
	// reads counts large reads, to release the file's mapped pages.
	reads residentReads
	// closed, under mu, is set by Close.
	closed bool

	stopc chan struct{}
	donec chan struct{}
}

// Open opens or creates the database at cfg.Path and starts the commit
// timer, which runs until Close.
func Open(cfg Config) (*Backend, error) {
	if cfg.BatchInterval <= 0 {
		cfg.BatchInterval = 100 * time.Millisecond
	}
	if cfg.BatchLimit <= 0 {
		cfg.BatchLimit = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("create dir for %s: %w", cfg.Path, err)
	}
	if err := removeDefragLeftover(cfg.Path); err != nil {
		return nil, err
	}
	db, err := openDB(cfg.Path)
	if err != nil {
		return nil, err
	}
	b := &Backend{cfg: cfg, db: db, lg: cfg.Logger, stopc: make(chan struct{}), donec: make(chan struct{})}
	if err := b.begin(); err != nil {
		db.Close()
		return nil, err
	}
	go b.commitLoop()
	return b, nil
}

// initialMmapSize is the memory map reserved up front, as etcd's: bbolt
// cannot remap while a read transaction is open, so a snapshot streaming
// to a client (or a peer) would hold up every commit once the file outgrew
// a smaller map. It is address space, not memory: pages are only read in
// as they are used.
const initialMmapSize = 10 << 30

func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, InitialMmapSize: initialMmapSize})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}

func (b *Backend) begin() error {
	tx, err := b.db.Begin(true)
	if err != nil {
		return fmt.Errorf("begin batch transaction: %w", err)
	}
	b.tx = tx
	b.size.Store(tx.Size())
	b.bkts = make(map[string]*bolt.Bucket, len(buckets))
	for _, name := range buckets {
		bk, err := tx.CreateBucketIfNotExists(name)
		if err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
		if bytes.Equal(name, Key) {
			// Revisions only ever append at the end of the key bucket: bbolt's
			// default half-full split would leave every page but the last
			// half empty, a file (and mapped memory) near twice the data.
			bk.FillPercent = keyFillPercent
		}
		b.bkts[string(name)] = bk
	}
	return nil
}

// keyFillPercent is how full a split leaves the key bucket's pages, as
// etcd fills them.
const keyFillPercent = 0.9

func (b *Backend) commitLoop() {
	defer close(b.donec)
	t := time.NewTicker(b.cfg.BatchInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.mu.Lock()
			// While a defrag runs, the old file is on its way out and
			// its syncs would queue behind the copy's with the lock
			// held: the batch waits for the swap (or its size limit,
			// or a ForceCommit), the WAL keeping it durable meanwhile.
			if b.pending > 0 && !b.j.on {
				b.commitLocked()
			}
			b.mu.Unlock()
		case <-b.stopc:
			return
		}
	}
}

// commitLocked commits the batch and opens the next one. A failed commit
// means the disk refused data already acknowledged through the WAL; the
// WAL still has it, so the member stops rather than diverge, and replays
// on restart.
func (b *Backend) commitLocked() {
	start := time.Now()
	err := b.runPreCommit()
	if err == nil {
		err = b.tx.Commit()
	}
	if b.cfg.OnCommit != nil {
		b.cfg.OnCommit(time.Since(start))
	}
	if err != nil {
		b.lg.Error("commit database batch; stopping", "err", err)
		os.Exit(1)
	}
	b.pending = 0
	if err := b.begin(); err != nil {
		b.lg.Error("reopen database batch; stopping", "err", err)
		os.Exit(1)
	}
}

// WriteTx is the batch transaction as a writer sees it.
type WriteTx struct{ b *Backend }

// Put stores value under key in bucket.
func (w WriteTx) Put(bucket, key, value []byte) error {
	if err := w.b.bkts[string(bucket)].Put(key, value); err != nil {
		return fmt.Errorf("put in bucket %s: %w", bucket, err)
	}
	w.b.j.put(bucket, key, value)
	return nil
}

// Delete removes key from bucket.
func (w WriteTx) Delete(bucket, key []byte) error {
	if err := w.b.bkts[string(bucket)].Delete(key); err != nil {
		return fmt.Errorf("delete from bucket %s: %w", bucket, err)
	}
	w.b.j.del(bucket, key)
	return nil
}

// Get reads key from bucket, including writes not yet committed. The
// returned slice is valid only inside the transaction.
func (w WriteTx) Get(bucket, key []byte) []byte { return w.b.bkts[string(bucket)].Get(key) }

// ForEach calls fn for the keys of bucket in order, from start on, until fn
// returns false.
func (w WriteTx) ForEach(bucket, start []byte, fn func(k, v []byte) bool) {
	forEach(w.b.bkts[string(bucket)], start, fn)
}

// Write runs fn with exclusive access to the batch transaction and counts
// it as one write toward the batch limit.
func (b *Backend) Write(fn func(WriteTx) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := fn(WriteTx{b})
	b.pending++
	if b.pending >= b.cfg.BatchLimit {
		b.commitLocked()
	}
	return err
}

// ReadTx is the batch transaction as a reader sees it.
type ReadTx struct{ b *Backend }

// Get reads key from bucket. The slice is valid only inside Read.
func (r ReadTx) Get(bucket, key []byte) []byte { return r.b.bkts[string(bucket)].Get(key) }

// Lookup is a point reader over one bucket for reading many keys: each
// Get reuses one cursor, where ReadTx.Get makes a new one per key.
type Lookup struct{ c *bolt.Cursor }

// Lookup returns a point reader over bucket, valid only inside Read.
func (r ReadTx) Lookup(bucket []byte) Lookup { return Lookup{r.b.bkts[string(bucket)].Cursor()} }

// Get reads key, as ReadTx.Get does.
func (l Lookup) Get(key []byte) []byte {
	k, v := l.c.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}

// ForEach calls fn for the keys of bucket in order, from start on, until fn
// returns false.
func (r ReadTx) ForEach(bucket, start []byte, fn func(k, v []byte) bool) {
	forEach(r.b.bkts[string(bucket)], start, fn)
}

// Read runs fn with shared access to the batch transaction.
func (b *Backend) Read(fn func(ReadTx)) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	fn(ReadTx{b})
}

func forEach(bk *bolt.Bucket, start []byte, fn func(k, v []byte) bool) {
	c := bk.Cursor()
	var k, v []byte
	if start == nil {
		k, v = c.First()
	} else {
		k, v = c.Seek(start)
	}
	for ; k != nil; k, v = c.Next() {
		if !fn(k, v) {
			return
		}
	}
}

// SetPreCommit makes fn run in every batch just before it commits, and
// before a defrag takes the last of its journal.
func (b *Backend) SetPreCommit(fn PreCommit) {
	b.mu.Lock()
	b.preCommit = fn
	b.mu.Unlock()
}

func (b *Backend) runPreCommit() error {
	if b.preCommit == nil {
		return nil
	}
	if err := b.preCommit(WriteTx{b}); err != nil {
		return fmt.Errorf("before commit: %w", err)
	}
	return nil
}

// ForceCommit commits the pending batch now.
func (b *Backend) ForceCommit() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending > 0 {
		b.commitLocked()
	}
}

// Size is the database file's size in bytes as of the last commit. It is
// read without the writer lock: the quota check asks it on every write.
func (b *Backend) Size() int64 { return b.size.Load() }

// SizeInUse is the size of the pages that hold data, excluding free ones.
func (b *Backend) SizeInUse() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	st := b.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(b.db.Info().PageSize)
	return max(b.tx.Size()-free, 0)
}

// Close commits what is pending, stops the commit timer and closes the
// file. A running defrag gives up and leaves the database as it was.
func (b *Backend) Close() error {
	close(b.stopc)
	<-b.donec
	b.defragMu.Lock()
	defer b.defragMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.runPreCommit()
	err = errors.Join(err, b.tx.Commit(), b.db.Close())
	b.closed = true
	b.bg.Wait()
	return err
}
