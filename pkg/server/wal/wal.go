// Package wal is kvd's write-ahead log for raft: hard states, entries and
// snapshot markers appended to preallocated segment files, each record
// guarded by a CRC32C, with one fdatasync per Save (one per raft Ready,
// however many requests it carries).
//
// A record torn by a crash at the end of the last segment is cut off when
// the log is opened; damage anywhere else is an error naming the file and
// offset, because silently dropping acknowledged entries is worse than not
// starting.
package wal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// SegmentSize is the size segments are preallocated to; a variable so
// tests can use small segments.
var SegmentSize int64 = 64 << 20

// Snapshot identifies a raft snapshot position recorded in the log.
type Snapshot struct{ Index, Term uint64 }

// WAL is an open log, positioned for appending after ReadAll (or Create).
type WAL struct {
	dir      string
	lg       *slog.Logger
	lock     *os.File
	metadata []byte
	start    Snapshot

	f     *os.File // the segment being appended to
	off   int64
	seq   uint64
	hs    *raftpb.HardState // last saved, repeated at the head of each segment
	last  uint64            // last entry index written
	buf   []byte
	marsh proto.MarshalOptions
	segs  []segment
	syncs int // fdatasyncs so far, for tests
	// onSync, when set, is told how long each fdatasync took.
	onSync func(time.Duration)
}

type segment struct {
	seq, first uint64
	path       string
}

func segmentName(seq, first uint64) string { return fmt.Sprintf("%016x-%016x.wal", seq, first) }

// Exist reports whether dir holds a WAL.
func Exist(dir string) bool {
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	return err == nil && len(names) > 0
}

// headBytes is how much of a WAL's first segment HasState reads: a WAL
// that holds no raft state has only its metadata and the zero snapshot
// record, a few hundred bytes.
const headBytes = 64 << 10

// HasState says whether the WAL in dir holds raft state: an entry or a
// hard state, which raft writes in its first Ready. It reads only the
// head of the first segment, and answers true when it cannot tell, so
// that no caller throws away a WAL it should keep.
func HasState(dir string) (bool, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return false, err
	}
	if len(segs) != 1 {
		return len(segs) > 1, nil // more than one: it was cut, so it had entries
	}
	f, err := os.Open(segs[0].path)
	if err != nil {
		return false, fmt.Errorf("open wal segment %s: %w", segs[0].path, err)
	}
	defer f.Close()
	b := make([]byte, headBytes)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read wal segment %s: %w", segs[0].path, err)
	}
	b = b[:n]
	for off := 0; ; {
		r, next, end, err := decodeRecord(b, off)
		switch {
		case end && n == headBytes && off+headerLen > n:
			return true, nil // the head ran out, not the records: can't tell
		case end:
			return false, nil
		case err != nil:
			return true, nil // a record running past the head, or torn: can't tell
		case r.typ == typeEntry || r.typ == typeHardState:
			return true, nil
		}
		off = next
	}
}

// Create makes a new WAL in dir whose segments all start with metadata.
func Create(dir string, metadata []byte, lg *slog.Logger) (*WAL, error) {
	if Exist(dir) {
		return nil, fmt.Errorf("create wal: %s already holds one", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create wal dir %s: %w", dir, err)
	}
	w, err := newWAL(dir, lg)
	if err != nil {
		return nil, err
	}
	w.metadata = slices.Clone(metadata)
	if err := w.cut(0); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// Open opens the WAL in dir to be read from snap on by ReadAll.
func Open(dir string, snap Snapshot, lg *slog.Logger) (*WAL, error) {
	w, err := newWAL(dir, lg)
	if err != nil {
		return nil, err
	}
	w.start = snap
	if w.segs, err = listSegments(dir); err != nil {
		w.Close()
		return nil, err
	}
	if len(w.segs) == 0 {
		w.Close()
		return nil, fmt.Errorf("open wal: no segments in %s", dir)
	}
	return w, nil
}

func newWAL(dir string, lg *slog.Logger) (*WAL, error) {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open wal lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock wal %s (is another kvd using it?): %w", dir, err)
	}
	return &WAL{dir: dir, lg: lg, lock: lock}, nil
}

func listSegments(dir string) ([]segment, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, p := range names {
		var s segment
		if _, err := fmt.Sscanf(filepath.Base(p), "%016x-%016x.wal", &s.seq, &s.first); err != nil {
			return nil, fmt.Errorf("wal: unexpected file %s", p)
		}
		s.path = p
		segs = append(segs, s)
	}
	slices.SortFunc(segs, func(a, b segment) int { return int(a.seq) - int(b.seq) })
	return segs, nil
}

// ReadAll replays the log from the snapshot Open was given: the metadata,
// the last hard state and every entry after the snapshot, a later entry
// replacing an earlier one at the same index. The WAL is then ready for
// Save.
func (w *WAL) ReadAll() (metadata []byte, hs *raftpb.HardState, ents []*raftpb.Entry, err error) {
	sawSnap := w.start.Index == 0
	var recorded []Snapshot
	for i, s := range w.segs {
		last := i == len(w.segs)-1
		err := w.readSegment(s, last, func(r record) error {
			switch r.typ {
			case typeMetadata:
				w.metadata = slices.Clone(r.data)
			case typeHardState:
				h := new(raftpb.HardState)
				if err := proto.Unmarshal(r.data, h); err != nil {
					return err
				}
				hs = h
			case typeSnapshot:
				snap, err := decodeSnapshot(r.data)
				if err != nil {
					return err
				}
				recorded = append(recorded, snap)
				if snap == w.start {
					sawSnap = true
				}
			case typeEntry:
				e := new(raftpb.Entry)
				if err := proto.Unmarshal(r.data, e); err != nil {
					return err
				}
				w.last = e.GetIndex()
				if e.GetIndex() <= w.start.Index {
					return nil
				}
				// raft may rewrite an uncommitted tail: drop what the
				// new entry replaces.
				keep := int(e.GetIndex() - w.start.Index - 1)
				if keep < len(ents) {
					ents = ents[:keep]
				}
				ents = append(ents, e)
			default:
				return fmt.Errorf("%w: unknown record type %d", ErrCorrupt, r.typ)
			}
			return nil
		})
		if err != nil {
			return nil, nil, nil, err
		}
	}
	if !sawSnap {
		return nil, nil, nil, &SnapshotNotFoundError{Want: w.start, Recorded: recorded, Dir: w.dir}
	}
	if hs != nil {
		w.hs = hs
	}
	return w.metadata, hs, ents, nil
}

// SnapshotNotFoundError is ReadAll's answer when the log holds no record
// of the snapshot it was opened at. Recorded lists the snapshots it does
// record, so that the caller can reopen it at one of those.
type SnapshotNotFoundError struct {
	Want     Snapshot
	Recorded []Snapshot
	Dir      string
}

func (e *SnapshotNotFoundError) Error() string {
	return fmt.Sprintf("wal: snapshot at index %d term %d not found in wal %s", e.Want.Index, e.Want.Term, e.Dir)
}

// readSegment calls fn for each record of s. In the last segment a torn
// tail is repaired and the segment is kept open for appending.
func (w *WAL) readSegment(s segment, last bool, fn func(record) error) error {
	b, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("read wal segment %s: %w", s.path, err)
	}
	off := 0
	for {
		r, next, end, err := decodeRecord(b, off)
		if end {
			break
		}
		if err != nil {
			if !last || !onlyZeros(b[tornExtent(b, off):]) {
				return fmt.Errorf("%w in %s at offset %d", ErrCorrupt, s.path, off)
			}
			w.lg.Warn("repairing torn wal tail", "file", s.path, "offset", off, "bytes", tornExtent(b, off)-off)
			if err := repairTail(s.path, int64(off)); err != nil {
				return err
			}
			break
		}
		if err := fn(r); err != nil {
			return fmt.Errorf("wal %s at offset %d: %w", s.path, off, err)
		}
		off = next
	}
	if last {
		f, err := os.OpenFile(s.path, os.O_RDWR, 0o600)
		if err != nil {
			return fmt.Errorf("open wal segment %s for append: %w", s.path, err)
		}
		w.f, w.off, w.seq = f, int64(off), s.seq
	}
	return nil
}

// repairTail zeroes a segment from off on, so the torn record reads as the
// end of the log, and syncs that before anything is appended.
func repairTail(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("repair wal %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("repair wal %s: %w", path, err)
	}
	if err := f.Truncate(max(st.Size(), SegmentSize)); err != nil {
		return fmt.Errorf("repair wal %s: %w", path, err)
	}
	return f.Sync()
}

// Save appends a hard state and entries with one write. It fdatasyncs
// only when raft needs durability: new entries, or a new term or vote. A
// hard state that only advanced the commit index is written but not
// synced, since raft recomputes a lost commit index from its peers.
func (w *WAL) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	hsChanged := hs != nil && !raft.IsEmptyHardState(hs) && (w.hs == nil || !proto.Equal(hs, w.hs))
	if !hsChanged && len(ents) == 0 {
		return nil
	}
	mustSync := len(ents) > 0 || (hsChanged && (w.hs == nil || hs.GetTerm() != w.hs.GetTerm() || hs.GetVote() != w.hs.GetVote()))
	w.buf = w.buf[:0]
	var err error
	for _, e := range ents {
		if w.buf, err = w.appendMessage(w.buf, typeEntry, e); err != nil {
			return err
		}
	}
	if hsChanged {
		if w.buf, err = w.appendMessage(w.buf, typeHardState, hs); err != nil {
			return err
		}
		w.hs = proto.Clone(hs).(*raftpb.HardState)
	}
	if len(ents) > 0 {
		w.last = ents[len(ents)-1].GetIndex()
	}
	return w.write(w.buf, mustSync)
}

// appendMessage encodes m straight into the batch's buffer behind its
// record header, rather than into a buffer of its own to copy.
func (w *WAL) appendMessage(buf []byte, typ byte, m proto.Message) ([]byte, error) {
	buf, start := beginRecord(buf, typ)
	out, err := w.marsh.MarshalAppend(buf, m)
	if err != nil {
		// MarshalAppend returns no buffer on failure.
		return buf[:start], fmt.Errorf("encode wal record: %w", err)
	}
	return sealRecord(out, start), nil
}

// SaveSnapshot records that a snapshot at s exists, durably.
func (w *WAL) SaveSnapshot(s Snapshot) error {
	return w.write(appendRecord(nil, typeSnapshot, encodeSnapshot(s)), true)
}

func (w *WAL) write(b []byte, sync bool) error {
	if w.off+int64(len(b)) > SegmentSize && w.off > 0 {
		if err := w.cut(w.last + 1); err != nil {
			return err
		}
	}
	if _, err := w.f.WriteAt(b, w.off); err != nil {
		return fmt.Errorf("write wal %s: %w", w.f.Name(), err)
	}
	w.off += int64(len(b))
	if !sync {
		return nil
	}
	w.syncs++
	start := time.Now()
	err := unix.Fdatasync(int(w.f.Fd()))
	if w.onSync != nil {
		w.onSync(time.Since(start))
	}
	if err != nil {
		return fmt.Errorf("sync wal %s: %w", w.f.Name(), err)
	}
	return nil
}

// OnSync has fn told how long each fdatasync takes; call it before the
// first write.
func (w *WAL) OnSync(fn func(time.Duration)) { w.onSync = fn }

// cut starts a new segment whose entries begin at first. It is built
// under a temporary name and renamed into place only once complete, so a
// crash leaves either no new segment or a whole one.
func (w *WAL) cut(first uint64) error {
	seq := w.seq + 1
	if w.f == nil {
		seq = 0
	}
	final := filepath.Join(w.dir, segmentName(seq, first))
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create wal segment: %w", err)
	}
	if err := preallocate(f, SegmentSize); err != nil {
		f.Close()
		return err
	}
	head := appendRecord(nil, typeMetadata, w.metadata)
	if w.hs != nil {
		if head, err = w.appendMessage(head, typeHardState, w.hs); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.WriteAt(head, 0); err != nil {
		f.Close()
		return fmt.Errorf("write wal segment head: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync wal segment: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		f.Close()
		return fmt.Errorf("install wal segment: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	if w.f != nil {
		w.f.Close()
	}
	w.f, w.off, w.seq = f, int64(len(head)), seq
	w.segs = append(w.segs, segment{seq: seq, first: first, path: final})
	return nil
}

func preallocate(f *os.File, size int64) error {
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err == nil {
		return nil
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("preallocate %s: %w", f.Name(), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// ReleaseLockTo deletes segments that hold only entries below index: a
// raft snapshot at or after index makes them unnecessary. The segment
// being written is never deleted.
func (w *WAL) ReleaseLockTo(index uint64) error {
	var keep []segment
	for i, s := range w.segs {
		last := i == len(w.segs)-1
		if !last && w.segs[i+1].first <= index {
			if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove wal segment %s: %w", s.path, err)
			}
			continue
		}
		keep = append(keep, s)
	}
	w.segs = keep
	return nil
}

// Close closes the segment and releases the directory lock.
func (w *WAL) Close() error {
	var err error
	if w.f != nil {
		err = w.f.Close()
	}
	if w.lock != nil {
		w.lock.Close()
	}
	return err
}

// segmentCount is used by tests.
func (w *WAL) segmentCount() int { return len(w.segs) }
