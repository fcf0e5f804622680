package raftnode

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// SnapshotPath is where a member accepts a raft snapshot followed by the
// database it stands for.
const SnapshotPath = "/raft/snapshot"

// SnapshotSource freezes a copy of the member's database for a lagging
// peer. Raft's snapshot message carries no data, and its metadata may
// predate members added since (which raft would then refuse to restore),
// so the message sent carries the metadata of the copy instead: the index
// and term it has applied and the configuration at that index.
// A nil metadata keeps raft's.
type SnapshotSource interface {
	OpenSnapshot() (*raftpb.SnapshotMetadata, SnapshotDB, error)
}

// SnapshotDB is a frozen database copy, released by Close.
type SnapshotDB interface {
	io.WriterTo
	Close() error
}

// SnapshotDBPath is where a database received with the raft snapshot at
// index waits until the state machine installs it.
func SnapshotDBPath(dir string, index uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x.snap.db", index))
}

// sendSnapshot streams m followed by the database to p, in chunks as the
// database is read, and tells raft how it went: until then raft sends the
// peer nothing else to replicate.
func (t *HTTPTransport) sendSnapshot(p *peer, m *raftpb.Message) {
	defer t.wg.Done()
	t.mu.Lock()
	src, n := t.source, t.node
	t.mu.Unlock()
	status := raft.SnapshotFailure
	defer func() {
		if n != nil {
			n.ReportSnapshot(p.id, status)
		}
	}()
	if src == nil {
		t.lg.Error("cannot send a snapshot: no database source", "peer", fmt.Sprintf("%x", p.id))
		return
	}
	var last error
	for _, u := range p.peerURLs() {
		var index uint64
		index, last = t.postSnapshotFrom(src, u, m)
		if last == nil {
			status = raft.SnapshotFinish
			t.lg.Info("sent snapshot", "peer", fmt.Sprintf("%x", p.id), "index", index)
			return
		}
	}
	t.lg.Warn("send snapshot failed", "peer", fmt.Sprintf("%x", p.id), "err", last)
}

// postSnapshotFrom sends m, with the metadata of a database copy frozen
// now, followed by that copy, and returns the index it stands for.
func (t *HTTPTransport) postSnapshotFrom(src SnapshotSource, u string, m *raftpb.Message) (uint64, error) {
	md, db, err := src.OpenSnapshot()
	if err != nil {
		return 0, err
	}
	if md == nil {
		md = m.GetSnapshot().GetMetadata()
	}
	if md.GetIndex() < m.GetSnapshot().GetMetadata().GetIndex() {
		_ = db.Close()
		return 0, fmt.Errorf("database at index %d is older than raft's snapshot at %d", md.GetIndex(), m.GetSnapshot().GetMetadata().GetIndex())
	}
	msg := proto.Clone(m).(*raftpb.Message)
	msg.Snapshot = &raftpb.Snapshot{Metadata: md}
	var head bytes.Buffer
	appendFrame(&head, msg)
	pr, pw := io.Pipe()
	go func() {
		_, err := db.WriteTo(pw)
		pw.CloseWithError(err)
		_ = db.Close()
	}()
	err = t.postSnapshot(u, io.MultiReader(&head, pr))
	pr.Close() // ends the writer if the peer stopped reading early
	return md.GetIndex(), err
}

func (t *HTTPTransport) postSnapshot(u string, body io.Reader) error {
	req, err := http.NewRequestWithContext(t.ctx, http.MethodPost, u+SnapshotPath, body)
	if err != nil {
		return err
	}
	req.Header.Set(clusterHeader, strconv.FormatUint(t.clusterID, 16))
	req.Header.Set(FromHeader, strconv.FormatUint(t.localID, 16))
	resp, err := t.snapClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("peer at %s answered %s: %s", u, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// receiveSnapshot saves the database that follows a snapshot message to
// disk, durably, before raft hears of the snapshot: once raft persists it,
// the state machine must be able to find the database, even after a crash.
func (t *HTTPTransport) receiveSnapshot(w http.ResponseWriter, r *http.Request, n Stepper) {
	br := bufio.NewReaderSize(r.Body, 1<<20)
	m, err := (&frameReader{br: br}).next()
	if err != nil || m.GetType() != raftpb.MsgSnap {
		http.Error(w, "expected a snapshot message", http.StatusBadRequest)
		return
	}
	if !t.accept(w, r, m) {
		return
	}
	index := m.GetSnapshot().GetMetadata().GetIndex()
	if err := saveDB(t.snapDir, index, br); err != nil {
		t.lg.Error("receive snapshot", "from", fmt.Sprintf("%x", m.GetFrom()), "index", index, "err", err)
		http.Error(w, "save snapshot: "+err.Error(), http.StatusInternalServerError)
		return
	}
	t.lg.Info("received snapshot", "from", fmt.Sprintf("%x", m.GetFrom()), "index", index)
	if err := n.Step(r.Context(), m); err != nil {
		http.Error(w, "raft refused the snapshot: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func saveDB(dir string, index uint64, r io.Reader) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "incoming-*.db")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("copy database: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync database: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), SnapshotDBPath(dir, index))
}
