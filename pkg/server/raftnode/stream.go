package raftnode

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// Raft messages to a peer flow over one TCP connection that stays open:
// the sender opens it with an HTTP request asking to switch protocols, the
// peer checks the cluster and the sender and answers 101, and from then on
// the sender only writes length-prefixed messages. Nothing comes back on
// it; replies travel on the peer's own stream the other way. Compared with
// a request per batch, this saves a round trip and four syscalls a batch.

// FromHeader names, in hex, the member that opens a peer connection (a
// raft stream or a snapshot post), so the receiver, and fault-injecting
// proxies in tests, can tell senders apart.
const FromHeader = "X-Kvd-From"

const (
	upgradeProtocol = "kvd-raft/1"
	// writeTimeout bounds one batch's write: a peer that stops reading
	// for that long is treated as gone, and the stream is reopened.
	writeTimeout = 5 * time.Second
	dialTimeout  = 2 * time.Second
)

var errRemoved = errors.New("this member was removed from the cluster")

// stream is the sending end of a connection to one peer, used by that
// peer's sender goroutine only.
type stream struct {
	conn net.Conn
	bw   *bufio.Writer
}

func (s *stream) close() {
	if s != nil {
		s.conn.Close()
	}
}

// write sends b on p's stream, opening one when there is none and dropping
// it on failure, so the next batch tries afresh.
func (t *HTTPTransport) write(p *peer, st **stream, b []byte) error {
	if *st == nil {
		s, err := t.dial(p)
		if err != nil {
			return err
		}
		*st = s
	}
	s := *st
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := s.bw.Write(b)
	if err == nil {
		err = s.bw.Flush()
	}
	if err != nil {
		s.close()
		*st = nil
		return fmt.Errorf("write to peer %x: %w", p.id, err)
	}
	return nil
}

// dial opens a stream to the first of p's URLs that accepts one.
func (t *HTTPTransport) dial(p *peer) (*stream, error) {
	var last error
	for _, raw := range p.peerURLs() {
		s, err := t.dialURL(raw)
		if err == nil {
			return s, nil
		}
		if errors.Is(err, errRemoved) {
			t.lg.Error("a peer says this member was removed from the cluster", "peer", fmt.Sprintf("%x", p.id))
			t.mu.Lock()
			gone := t.onGone
			t.mu.Unlock()
			if gone != nil {
				gone()
			}
		}
		last = err
	}
	return nil, last
}

func (t *HTTPTransport) dialURL(raw string) (*stream, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(t.ctx, dialTimeout)
	defer cancel()
	var conn net.Conn
	switch u.Scheme {
	case "http":
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	case "https":
		// The handshake is part of the dial, and so of its timeout.
		conn, err = (&tls.Dialer{Config: t.tlsConfig}).DialContext(ctx, "tcp", u.Host)
	default:
		return nil, fmt.Errorf("peer URL %s: want http or https", raw)
	}
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, raw+RaftPath, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", upgradeProtocol)
	req.Header.Set(clusterHeader, strconv.FormatUint(t.clusterID, 16))
	req.Header.Set(FromHeader, strconv.FormatUint(t.localID, 16))
	_ = conn.SetDeadline(time.Now().Add(dialTimeout))
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	resp.Body.Close()
	_ = conn.SetDeadline(time.Time{})
	switch resp.StatusCode {
	case http.StatusSwitchingProtocols:
		return &stream{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10)}, nil
	case http.StatusGone:
		conn.Close()
		return nil, errRemoved
	}
	conn.Close()
	return nil, fmt.Errorf("peer at %s answered %s", raw, resp.Status)
}

// serveStream takes over the connection of an accepted stream request and
// steps every message read from it into raft until the peer or this
// member closes it.
func (t *HTTPTransport) serveStream(w http.ResponseWriter, r *http.Request, n Stepper) {
	from, err := strconv.ParseUint(r.Header.Get(FromHeader), 16, 64)
	if err != nil || r.Header.Get("Upgrade") != upgradeProtocol {
		http.Error(w, "expected a raft stream upgrade", http.StatusBadRequest)
		return
	}
	if t.removedMember(from, r.RemoteAddr) {
		http.Error(w, "member removed from the cluster", http.StatusGone)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot take over the connection", http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	if !t.track(conn, from) {
		return
	}
	defer t.untrack(conn)
	_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+upgradeProtocol+"\r\n\r\n")
	fr := frameReader{br: bufio.NewReaderSize(rw.Reader, 64<<10)}
	props := t.startProposals(n)
	defer props.stop()
	for {
		m, err := fr.next()
		if err != nil || m.GetFrom() != from {
			return
		}
		if m.GetType() == raftpb.MsgProp {
			props.offer(m)
			continue
		}
		_ = n.Step(context.Background(), m)
	}
}

// Bounds of the proposals a peer forwarded that wait for raft to take
// them, in messages and in bytes of entry data (a message may carry a
// batch of up to 1 MiB); past them, proposals are dropped, and their
// proposers time out, as when raft drops one.
const (
	proposalQueueLen   = 512
	proposalQueueBytes = 64 << 20
)

// proposals steps the proposals a peer forwards on one stream, on their
// own goroutine. Raft takes a proposal only while it knows a leader: the
// stream's own goroutine, blocked on one, would stop reading the very
// heartbeats and appends from which this member learns of a leader, and
// stay blocked for good. etcd keeps proposals apart for the same reason.
type proposals struct {
	q      chan queuedProposal
	bytes  atomic.Int64 // of the entries queued
	cancel context.CancelFunc
	done   chan struct{}
}

func (t *HTTPTransport) startProposals(n Stepper) *proposals {
	ctx, cancel := context.WithCancel(t.ctx)
	p := &proposals{q: make(chan queuedProposal, proposalQueueLen), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case qp := <-p.q:
				p.bytes.Add(-qp.bytes)
				if err := n.Step(ctx, qp.m); err != nil && ctx.Err() != nil {
					return // the stream ended
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return p
}

// offer queues m, or drops it when the queue is full.
func (p *proposals) offer(m *raftpb.Message) {
	n := entryBytes(m)
	if p.bytes.Add(n) > proposalQueueBytes {
		p.bytes.Add(-n)
		return
	}
	select {
	case p.q <- queuedProposal{m: m, bytes: n}:
	default:
		p.bytes.Add(-n)
	}
}

// queuedProposal is a proposal waiting for raft, with the bytes it counts
// for in the queue's bound.
type queuedProposal struct {
	m     *raftpb.Message
	bytes int64
}

// entryBytes is the size of the data m's entries carry.
func entryBytes(m *raftpb.Message) int64 {
	var n int64
	for _, e := range m.GetEntries() {
		n += int64(len(e.GetData()))
	}
	return n
}

// stop ends the goroutine, dropping what is still queued: the proposers
// time out, as they would had the stream broken before delivering it.
func (p *proposals) stop() {
	p.cancel()
	<-p.done
}

// track registers an inbound stream from member from, for Stop, or
// RemovePeer(from), to close; a stopped transport or a removed member gets
// none.
func (t *HTTPTransport) track(c io.Closer, from uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.removed[from] {
		return false
	}
	t.inbound[c] = from
	if p, ok := t.peers[from]; ok {
		// The peer is up: a sender waiting out a backoff need not.
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	return true
}

func (t *HTTPTransport) untrack(c io.Closer) {
	t.mu.Lock()
	delete(t.inbound, c)
	t.mu.Unlock()
}
