package raftnode

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
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

	mu       sync.Mutex
	peers    map[uint64]*peer
	node     Stepper
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopc    chan struct{}
}

type peer struct {
	id   uint64
	urls []string
	q    chan *raftpb.Message
}

// NewHTTPTransport returns a transport for a member of clusterID.
func NewHTTPTransport(clusterID uint64, lg *slog.Logger) *HTTPTransport {
	return &HTTPTransport{
		clusterID: clusterID,
		lg:        lg,
		client:    &http.Client{Timeout: 5 * time.Second},
		peers:     map[uint64]*peer{},
		stopc:     make(chan struct{}),
	}
}

// SetNode names the raft node that receives messages and delivery reports.
func (t *HTTPTransport) SetNode(n Stepper) {
	t.mu.Lock()
	t.node = n
	t.mu.Unlock()
}

// AddPeer starts sending to member id at urls.
func (t *HTTPTransport) AddPeer(id uint64, urls []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.peers[id]; ok {
		return
	}
	p := &peer{id: id, urls: urls, q: make(chan *raftpb.Message, peerQueue)}
	t.peers[id] = p
	t.wg.Add(1)
	go t.run(p)
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

// Stop ends every sender.
func (t *HTTPTransport) Stop() {
	t.stopOnce.Do(func() { close(t.stopc) })
	t.wg.Wait()
}

// run drains p's queue, sending what has piled up as one batch.
func (t *HTTPTransport) run(p *peer) {
	defer t.wg.Done()
	var buf bytes.Buffer
	for {
		var first *raftpb.Message
		select {
		case first = <-p.q:
		case <-t.stopc:
			return
		}
		batch := []*raftpb.Message{first}
	drain:
		for len(batch) < 512 {
			select {
			case m := <-p.q:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		buf.Reset()
		for _, m := range batch {
			b, err := proto.Marshal(m)
			if err != nil {
				continue
			}
			buf.Write(binary.AppendUvarint(nil, uint64(len(b))))
			buf.Write(b)
		}
		if err := t.post(p, buf.Bytes()); err != nil {
			t.report(p, batch, err)
		}
	}
}

func (t *HTTPTransport) post(p *peer, body []byte) error {
	var last error
	for _, u := range p.urls {
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
		if resp.StatusCode != http.StatusNoContent {
			last = fmt.Errorf("peer %x at %s answered %s", p.id, u, resp.Status)
			continue
		}
		return nil
	}
	return last
}

func (t *HTTPTransport) report(p *peer, batch []*raftpb.Message, err error) {
	t.lg.Debug("send to peer failed", "peer", fmt.Sprintf("%x", p.id), "err", err)
	t.mu.Lock()
	n := t.node
	t.mu.Unlock()
	if n == nil {
		return
	}
	n.ReportUnreachable(p.id)
	for _, m := range batch {
		if m.GetType() == raftpb.MsgSnap {
			n.ReportSnapshot(p.id, raft.SnapshotFailure)
		}
	}
}

// ServeHTTP accepts a batch of raft messages from a peer of the same
// cluster; a member of another cluster is refused and logged.
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
	br := bufio.NewReader(io.LimitReader(r.Body, 64<<20))
	for {
		size, err := binary.ReadUvarint(br)
		if err == io.EOF {
			break
		}
		if err != nil || size > 64<<20 {
			http.Error(w, "bad message framing", http.StatusBadRequest)
			return
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(br, b); err != nil {
			http.Error(w, "truncated message", http.StatusBadRequest)
			return
		}
		m := new(raftpb.Message)
		if err := proto.Unmarshal(b, m); err != nil {
			http.Error(w, "bad message", http.StatusBadRequest)
			return
		}
		_ = n.Step(r.Context(), m)
	}
	w.WriteHeader(http.StatusNoContent)
}
