package raftnode

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// RaftPath is where a member accepts raft messages from its peers.
const RaftPath = "/raft"

const clusterHeader = "X-Kvd-Cluster-Id"

// peerQueue bounds the messages waiting for one peer; past it, messages are
// dropped and raft retransmits, so a slow or dead peer costs bounded memory.
const peerQueue = 4096

// Stepper is the part of a Node the transport feeds.
type Stepper interface {
	Step(ctx context.Context, m *raftpb.Message) error
	ReportUnreachable(id uint64)
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
}

// HTTPTransport sends raft messages to peers as batches over HTTP POSTs,
// one sender goroutine and connection pool per peer, so a slow peer never
// holds up the raft loop or the other peers.
type HTTPTransport struct {
	clusterID uint64
	lg        *slog.Logger
	client    *http.Client
	// snapClient has no overall timeout: a database may take long to
	// stream, and a stopped transport cancels it instead.
	snapClient *http.Client
	snapDir    string

	mu       sync.Mutex
	peers    map[uint64]*peer
	removed  map[uint64]bool
	node     Stepper
	source   SnapshotSource
	onGone   func()
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopc    chan struct{}
}

type peer struct {
	id    uint64
	q     chan *raftpb.Message
	stopc chan struct{}

	mu   sync.Mutex
	urls []string
	// activeSince is when sends to the peer last started succeeding, zero
	// while they fail.
	activeSince time.Time
}

func (p *peer) setActive(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case !ok:
		p.activeSince = time.Time{}
	case p.activeSince.IsZero():
		p.activeSince = time.Now()
	}
}

func (p *peer) peerURLs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.urls
}

// NewHTTPTransport returns a transport for a member of clusterID that
// keeps snapshots it receives in snapDir.
func NewHTTPTransport(clusterID uint64, snapDir string, lg *slog.Logger) *HTTPTransport {
	ctx, cancel := context.WithCancel(context.Background())
	return &HTTPTransport{
		clusterID:  clusterID,
		lg:         lg,
		client:     &http.Client{Timeout: 5 * time.Second},
		snapClient: &http.Client{},
		snapDir:    snapDir,
		peers:      map[uint64]*peer{},
		removed:    map[uint64]bool{},
		ctx:        ctx,
		cancel:     cancel,
		stopc:      make(chan struct{}),
	}
}

// SetNode names the raft node that receives messages and delivery reports.
func (t *HTTPTransport) SetNode(n Stepper) {
	t.mu.Lock()
	t.node = n
	t.mu.Unlock()
}

// AddPeer starts sending to member id at urls; for a known peer it
// updates the URLs.
func (t *HTTPTransport) AddPeer(id uint64, urls []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.peers[id]; ok {
		p.mu.Lock()
		p.urls = urls
		p.mu.Unlock()
		return
	}
	p := &peer{id: id, urls: urls, q: make(chan *raftpb.Message, peerQueue), stopc: make(chan struct{})}
	t.peers[id] = p
	t.wg.Add(1)
	go t.run(p)
}

// RemovePeer stops sending to member id and refuses its messages from now
// on: a removed member must not disturb the cluster it left.
func (t *HTTPTransport) RemovePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removed[id] = true
	if p, ok := t.peers[id]; ok {
		close(p.stopc)
		delete(t.peers, id)
	}
}

// PeerIDs lists the members messages go to.
func (t *HTTPTransport) PeerIDs() []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]uint64, 0, len(t.peers))
	for id := range t.peers {
		ids = append(ids, id)
	}
	return ids
}

// OnRemoved names what to do when a peer answers that this member was
// removed from the cluster: a removed member may never apply its own
// removal, since the leader stops replicating to it.
func (t *HTTPTransport) OnRemoved(fn func()) {
	t.mu.Lock()
	t.onGone = fn
	t.mu.Unlock()
}

// ActiveSince is when member id became reachable, zero if it is not.
func (t *HTTPTransport) ActiveSince(id uint64) time.Time {
	t.mu.Lock()
	p, ok := t.peers[id]
	t.mu.Unlock()
	if !ok {
		return time.Time{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.activeSince
}

// SetSnapshotSource names where the database sent with a raft snapshot
// comes from.
func (t *HTTPTransport) SetSnapshotSource(src SnapshotSource) {
	t.mu.Lock()
	t.source = src
	t.mu.Unlock()
}

// Send queues msgs for their peers without blocking.
func (t *HTTPTransport) Send(msgs []*raftpb.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		p, ok := t.peers[m.GetTo()]
		if !ok {
			continue
		}
		select {
		case p.q <- m:
		default:
			if t.node != nil {
				t.node.ReportUnreachable(p.id)
			}
		}
	}
}

// Stop ends every sender and snapshot transfer.
func (t *HTTPTransport) Stop() {
	t.stopOnce.Do(func() {
		close(t.stopc)
		t.cancel()
	})
	t.wg.Wait()
}

// probeInterval is how often an idle peer is checked for being reachable.
const probeInterval = time.Second

// Backoff between failed sends to one peer: short enough that a peer that
// comes back hears heartbeats again within a fraction of an election.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 400 * time.Millisecond
)

// run drains p's queue, sending what has piled up as one batch over a
// kept-alive connection. Snapshots go on their own stream so heartbeats
// and appends keep flowing while a database transfers.
func (t *HTTPTransport) run(p *peer) {
	defer t.wg.Done()
	var buf bytes.Buffer
	backoff := time.Duration(0)
	probe := time.NewTicker(probeInterval)
	defer probe.Stop()
	sent := false
	for {
		var first *raftpb.Message
		select {
		case first = <-p.q:
			sent = true
		case <-probe.C:
			// Followers send each other nothing, yet membership checks
			// need to know which peers are up: an idle peer gets an empty
			// batch now and then.
			if !sent {
				p.setActive(t.post(p, nil) == nil)
			}
			sent = false
			continue
		case <-p.stopc:
			return
		case <-t.stopc:
			return
		}
		batch := make([]*raftpb.Message, 0, 16)
		for m := first; m != nil; m = next(p.q, len(batch)) {
			if m.GetType() == raftpb.MsgSnap {
				t.wg.Add(1)
				go t.sendSnapshot(p, m)
				continue
			}
			batch = append(batch, m)
		}
		if len(batch) == 0 {
			continue
		}
		buf.Reset()
		for _, m := range batch {
			appendFrame(&buf, m)
		}
		err := t.post(p, buf.Bytes())
		p.setActive(err == nil)
		if err != nil {
			t.report(p, err)
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			select {
			case <-time.After(backoff):
			case <-p.stopc:
				return
			case <-t.stopc:
				return
			}
			continue
		}
		backoff = 0
	}
}

// next takes another queued message for the batch being built, or nil
// when none is waiting or the batch is full.
func next(q chan *raftpb.Message, n int) *raftpb.Message {
	if n >= 512 {
		return nil
	}
	select {
	case m := <-q:
		return m
	default:
		return nil
	}
}

// appendFrame writes m length-prefixed, the framing both endpoints use.
func appendFrame(buf *bytes.Buffer, m *raftpb.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		return
	}
	buf.Write(binary.AppendUvarint(nil, uint64(len(b))))
	buf.Write(b)
}

func (t *HTTPTransport) post(p *peer, body []byte) error {
	var last error
	for _, u := range p.peerURLs() {
		req, err := http.NewRequest(http.MethodPost, u+RaftPath, bytes.NewReader(body))
		if err != nil {
			last = err
			continue
		}
		req.Header.Set(clusterHeader, strconv.FormatUint(t.clusterID, 16))
		resp, err := t.client.Do(req)
		if err != nil {
			last = err
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusGone {
			t.lg.Error("a peer says this member was removed from the cluster", "peer", fmt.Sprintf("%x", p.id))
			t.mu.Lock()
			gone := t.onGone
			t.mu.Unlock()
			if gone != nil {
				gone()
			}
		}
		if resp.StatusCode != http.StatusNoContent {
			last = fmt.Errorf("peer %x at %s answered %s", p.id, u, resp.Status)
			continue
		}
		return nil
	}
	return last
}

// report tells raft a peer missed a batch; snapshots travel apart and
// report for themselves (sendSnapshot).
func (t *HTTPTransport) report(p *peer, err error) {
	t.lg.Debug("send to peer failed", "peer", fmt.Sprintf("%x", p.id), "err", err)
	t.mu.Lock()
	n := t.node
	t.mu.Unlock()
	if n != nil {
		n.ReportUnreachable(p.id)
	}
}

// ServeHTTP accepts raft messages from a peer of the same cluster: batches
// on RaftPath, a snapshot with its database on SnapshotPath. Members of
// another cluster and removed members are refused and logged.
func (t *HTTPTransport) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if got := r.Header.Get(clusterHeader); got != strconv.FormatUint(t.clusterID, 16) {
		t.lg.Warn("refused raft messages from another cluster", "remote", r.RemoteAddr, "cluster-id", got)
		http.Error(w, "cluster ID mismatch", http.StatusPreconditionFailed)
		return
	}
	t.mu.Lock()
	n := t.node
	t.mu.Unlock()
	if n == nil {
		http.Error(w, "raft not started", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path == SnapshotPath {
		t.receiveSnapshot(w, r, n)
		return
	}
	br := bufio.NewReader(io.LimitReader(r.Body, 64<<20))
	for {
		m, err := readFrame(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if !t.accept(w, r, m) {
			return
		}
		_ = n.Step(r.Context(), m)
	}
	w.WriteHeader(http.StatusNoContent)
}

// accept refuses a message from a removed member, answering 410 Gone so
// that member learns its fate.
func (t *HTTPTransport) accept(w http.ResponseWriter, r *http.Request, m *raftpb.Message) bool {
	t.mu.Lock()
	gone := t.removed[m.GetFrom()]
	t.mu.Unlock()
	if gone {
		t.lg.Warn("refused raft message from a removed member", "from", fmt.Sprintf("%x", m.GetFrom()), "remote", r.RemoteAddr)
		http.Error(w, "member removed from the cluster", http.StatusGone)
	}
	return !gone
}

func readFrame(br *bufio.Reader) (*raftpb.Message, error) {
	size, err := binary.ReadUvarint(br)
	if err == io.EOF {
		return nil, err
	}
	if err != nil || size > 64<<20 {
		return nil, errors.New("bad message framing")
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, errors.New("truncated message")
	}
	m := new(raftpb.Message)
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, errors.New("bad message")
	}
	return m, nil
}
