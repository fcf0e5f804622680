package raftnode

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
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

// HTTPTransport sends raft messages to peers over one long-lived stream
// per peer, opened with an HTTP upgrade on the peer URL, with a sender
// goroutine per peer, so a slow peer never holds up the raft loop or the
// other peers. Snapshots, being large, travel in their own POSTs.
type HTTPTransport struct {
	clusterID uint64
	localID   uint64
	lg        *slog.Logger
	// snapClient has no overall timeout: a database may take long to
	// stream, and a stopped transport cancels it instead.
	snapClient *http.Client
	snapDir    string
	// tlsConfig secures streams to https:// peer URLs.
	tlsConfig *tls.Config

	mu      sync.Mutex
	peers   map[uint64]*peer
	removed map[uint64]bool
	node    Stepper
	source  SnapshotSource
	onGone  func()
	ctx     context.Context
	cancel  context.CancelFunc
	// inbound are the streams peers opened to this member, closed by
	// Stop; stopped refuses new ones.
	inbound  map[io.Closer]uint64 // to the sending member's ID
	stopped  bool
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopc    chan struct{}
}

type peer struct {
	id    uint64
	q     chan *raftpb.Message
	stopc chan struct{}
	// kick has the sender try the peer now, not at its next probe or
	// after its backoff: at start, and when the peer opens a stream to
	// this member, which shows it is up (perhaps restarted).
	kick chan struct{}

	mu   sync.Mutex
	urls []string
	// activeSince is when sends to the peer last started succeeding, zero
	// while they fail.
	activeSince time.Time
}

// setActive records whether the last send succeeded, and says whether
// that changed the peer's state.
func (p *peer) setActive(ok bool) (changed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case !ok && !p.activeSince.IsZero():
		p.activeSince = time.Time{}
		return true
	case ok && p.activeSince.IsZero():
		p.activeSince = time.Now()
		return true
	}
	return false
}

func (p *peer) peerURLs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.urls
}

// NewHTTPTransport returns the transport of member localID of clusterID,
// which keeps snapshots it receives in snapDir.
func NewHTTPTransport(clusterID, localID uint64, snapDir string, lg *slog.Logger) *HTTPTransport {
	ctx, cancel := context.WithCancel(context.Background())
	return &HTTPTransport{
		clusterID:  clusterID,
		localID:    localID,
		lg:         lg,
		snapClient: &http.Client{},
		inbound:    map[io.Closer]uint64{},
		snapDir:    snapDir,
		peers:      map[uint64]*peer{},
		removed:    map[uint64]bool{},
		ctx:        ctx,
		cancel:     cancel,
		stopc:      make(chan struct{}),
	}
}

// SetTLS names the TLS configuration of connections to https:// peer
// URLs (the member's peer certificate and trusted CA); call it before
// AddPeer. Without it, https peers are verified against the system's
// roots and no client certificate is shown.
func (t *HTTPTransport) SetTLS(cfg *tls.Config) {
	t.tlsConfig = cfg
	t.snapClient = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, TLSHandshakeTimeout: dialTimeout}}
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
	p := &peer{id: id, urls: urls, q: make(chan *raftpb.Message, peerQueue), stopc: make(chan struct{}), kick: make(chan struct{}, 1)}
	p.kick <- struct{}{}
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
	for c, from := range t.inbound {
		if from == id {
			c.Close()
		}
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

// Connected says whether member id is up as far as this member can tell:
// sends to it succeed, or it holds a stream open to this member. Both
// count, so that members starting at once learn soon that a quorum is up,
// whichever of them came up first.
func (t *HTTPTransport) Connected(id uint64) bool {
	if !t.ActiveSince(id).IsZero() {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, from := range t.inbound {
		if from == id {
			return true
		}
	}
	return false
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

// Stop ends every sender, snapshot transfer and inbound stream.
func (t *HTTPTransport) Stop() {
	t.stopOnce.Do(func() {
		close(t.stopc)
		t.cancel()
		t.mu.Lock()
		t.stopped = true
		for c := range t.inbound {
			c.Close()
		}
		t.mu.Unlock()
	})
	t.wg.Wait()
	t.snapClient.CloseIdleConnections()
}

// probeInterval is how often an idle peer is checked for being reachable.
const probeInterval = time.Second

// Backoff between failed sends to one peer: short enough that a peer that
// comes back hears heartbeats again within a fraction of an election.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 400 * time.Millisecond
)

// run drains p's queue, writing what has piled up as one batch to the
// peer's stream. Snapshots go apart, so heartbeats and appends keep
// flowing while a database transfers.
func (t *HTTPTransport) run(p *peer) {
	defer t.wg.Done()
	var (
		buf     bytes.Buffer
		st      *stream
		backoff time.Duration
	)
	defer func() { st.close() }()
	// Until the peer first answers, it is probed often, so that a member
	// that starts learns soon which peers are up (see Connected).
	probe := time.NewTicker(minBackoff)
	defer probe.Stop()
	answered := false
	sent := false
	for {
		buf.Reset()
		select {
		case first := <-p.q:
			sent = true
			for m := first; m != nil; m = next(p.q, buf.Len()) {
				if m.GetType() == raftpb.MsgSnap {
					t.wg.Add(1)
					go t.sendSnapshot(p, m)
					continue
				}
				appendFrame(&buf, m)
			}
			if buf.Len() == 0 {
				continue
			}
		case <-probe.C:
			// Followers send each other nothing, yet membership checks
			// need to know which peers are up, and a dead connection only
			// shows when written to: an idle peer gets a keep-alive.
			if sent {
				sent = false
				continue
			}
			buf.WriteByte(0)
		case <-p.kick:
			buf.WriteByte(0)
		case <-p.stopc:
			return
		case <-t.stopc:
			return
		}
		err := t.write(p, &st, buf.Bytes())
		if p.setActive(err == nil) {
			// As etcd, a peer's ups and downs are worth a line each:
			// they explain elections and stalled reads after the fact.
			if err == nil {
				t.lg.Info("peer became active", "peer", fmt.Sprintf("%x", p.id))
			} else {
				t.lg.Warn("peer became inactive", "peer", fmt.Sprintf("%x", p.id), "err", err)
			}
		}
		if err == nil {
			backoff = 0
			if !answered {
				answered = true
				probe.Reset(probeInterval)
			}
			continue
		}
		t.report(p, err)
		backoff = min(max(2*backoff, minBackoff), maxBackoff)
		select {
		case <-time.After(backoff):
		case <-p.kick:
		case <-p.stopc:
			return
		case <-t.stopc:
			return
		}
	}
}

// maxBatchBytes bounds one write to a peer's stream.
const maxBatchBytes = 4 << 20

// next takes another queued message for the batch being built, or nil
// when none is waiting or the batch is full.
func next(q chan *raftpb.Message, size int) *raftpb.Message {
	if size >= maxBatchBytes {
		return nil
	}
	select {
	case m := <-q:
		return m
	default:
		return nil
	}
}

// appendFrame writes m length-prefixed, the framing both endpoints use. A
// zero length is a keep-alive with no message.
//
// The message is encoded straight into buf's spare room, not into a
// buffer of its own that is then copied: a leader frames every append
// once per follower.
func appendFrame(buf *bytes.Buffer, m *raftpb.Message) {
	start := buf.Len()
	size := proto.Size(m)
	var n [binary.MaxVarintLen64]byte
	buf.Write(n[:binary.PutUvarint(n[:], uint64(size))])
	buf.Grow(size)
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf.AvailableBuffer(), m)
	if err != nil || len(b) != size {
		buf.Truncate(start)
		return
	}
	buf.Write(b)
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

// ServeHTTP accepts raft messages from a peer of the same cluster: a
// stream on RaftPath, a snapshot with its database on SnapshotPath.
// Members of another cluster and removed members are refused and logged.
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
	t.serveStream(w, r, n)
}

// removedMember says whether id was removed from the cluster, logging the
// refusal of its messages.
func (t *HTTPTransport) removedMember(id uint64, remote string) bool {
	t.mu.Lock()
	gone := t.removed[id]
	t.mu.Unlock()
	if gone {
		t.lg.Warn("refused raft messages from a removed member", "from", fmt.Sprintf("%x", id), "remote", remote)
	}
	return gone
}

// accept refuses a message from a removed member, answering 410 Gone so
// that member learns its fate.
func (t *HTTPTransport) accept(w http.ResponseWriter, r *http.Request, m *raftpb.Message) bool {
	if t.removedMember(m.GetFrom(), r.RemoteAddr) {
		http.Error(w, "member removed from the cluster", http.StatusGone)
		return false
	}
	return true
}

// frameReader reads framed messages from one connection, reusing one
// buffer for their encodings: decoding copies what it keeps.
type frameReader struct {
	br  *bufio.Reader
	buf []byte
}

// keptFrameBuffer is the largest buffer a stream keeps between messages;
// a rare larger message gets one of its own.
const keptFrameBuffer = 1 << 20

// next reads the next message, skipping keep-alives.
func (r *frameReader) next() (*raftpb.Message, error) {
	size, err := binary.ReadUvarint(r.br)
	for err == nil && size == 0 {
		size, err = binary.ReadUvarint(r.br)
	}
	if err == io.EOF {
		return nil, err
	}
	if err != nil || size > 64<<20 {
		return nil, errors.New("bad message framing")
	}
	b := r.buf
	if uint64(cap(b)) < size {
		b = make([]byte, size)
		if size <= keptFrameBuffer {
			r.buf = b
		}
	}
	b = b[:size]
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, errors.New("truncated message")
	}
	m := new(raftpb.Message)
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, errors.New("bad message")
	}
	return m, nil
}
