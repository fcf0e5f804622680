package raftnode

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// recorder is the receiving side's raft node as the transport sees it.
type recorder struct {
	mu          sync.Mutex
	stepped     []*raftpb.Message
	unreachable []uint64
}

func (r *recorder) Step(_ context.Context, m *raftpb.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stepped = append(r.stepped, m)
	return nil
}

func (r *recorder) ReportUnreachable(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreachable = append(r.unreachable, id)
}

func (r *recorder) ReportSnapshot(uint64, raft.SnapshotStatus) {}

func (r *recorder) counts() (stepped, unreachable int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.stepped), len(r.unreachable)
}

func msg(to uint64, index uint64) *raftpb.Message {
	return &raftpb.Message{To: &to, Type: raftpb.MessageType_MsgHeartbeat.Enum(), Commit: &index}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTransportDeliversWithinTheClusterOnly(t *testing.T) {
	lg := slog.New(slog.DiscardHandler)
	receiver := &recorder{}
	recvT := NewHTTPTransport(7, 1, t.TempDir(), lg)
	recvT.SetNode(receiver)
	srv := httptest.NewServer(recvT)
	defer srv.Close()

	for _, tc := range []struct {
		name      string
		clusterID uint64
		delivered bool
	}{
		{"same cluster", 7, true},
		{"other cluster", 8, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sender := &recorder{}
			tr := NewHTTPTransport(tc.clusterID, 0, t.TempDir(), lg)
			tr.SetNode(sender)
			tr.AddPeer(2, []string{srv.URL})
			defer tr.Stop()
			before, _ := receiver.counts()
			tr.Send([]*raftpb.Message{msg(2, 1), msg(2, 2), msg(3, 1)})
			if tc.delivered {
				eventually(t, "delivery", func() bool { n, _ := receiver.counts(); return n == before+2 })
				return
			}
			eventually(t, "unreachable report", func() bool { _, u := sender.counts(); return u > 0 })
			if n, _ := receiver.counts(); n != before {
				t.Fatalf("%d messages from another cluster were stepped", n-before)
			}
		})
	}
	resp, err := http.Get(srv.URL + RaftPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET %s: %s", RaftPath, resp.Status)
	}
}

// A member refuses messages from a member it removed, and the removed
// member hears of it: the leader stops replicating to a removed member,
// which may never apply its own removal.
func TestRemovedMemberIsRefusedAndTold(t *testing.T) {
	lg := slog.New(slog.DiscardHandler)
	receiver := &recorder{}
	recvT := NewHTTPTransport(7, 1, t.TempDir(), lg)
	recvT.SetNode(receiver)
	recvT.RemovePeer(5)
	srv := httptest.NewServer(recvT)
	defer srv.Close()

	removed := NewHTTPTransport(7, 5, t.TempDir(), lg)
	removed.SetNode(&recorder{})
	told := make(chan struct{}, 1)
	removed.OnRemoved(func() {
		select {
		case told <- struct{}{}:
		default:
		}
	})
	removed.AddPeer(1, []string{srv.URL})
	defer removed.Stop()
	from := uint64(5)
	m := msg(1, 1)
	m.From = &from
	removed.Send([]*raftpb.Message{m})
	select {
	case <-told:
	case <-time.After(5 * time.Second):
		t.Fatal("the removed member was not told")
	}
	if n, _ := receiver.counts(); n != 0 {
		t.Fatalf("%d messages from a removed member were stepped", n)
	}
}

// leaderless is a raft node that knows no leader: it takes every message
// but a proposal, which it holds until the caller gives up, as raft does.
type leaderless struct {
	recorder
	held, released chan struct{}
}

func (l *leaderless) Step(ctx context.Context, m *raftpb.Message) error {
	if m.GetType() != raftpb.MsgProp {
		return l.recorder.Step(ctx, m)
	}
	l.held <- struct{}{}
	<-ctx.Done()
	l.released <- struct{}{}
	return ctx.Err()
}

// A proposal a peer forwards to a member that has lost its leader must
// not hold up the rest of the stream: the heartbeats behind it are how
// the member learns of the next leader. Once the stream ends, the proposal
// waiting for raft is given up.
func TestForwardedProposalDoesNotBlockTheStream(t *testing.T) {
	lg := slog.New(slog.DiscardHandler)
	receiver := &leaderless{held: make(chan struct{}, 1), released: make(chan struct{}, 1)}
	recvT := NewHTTPTransport(7, 1, t.TempDir(), lg)
	recvT.SetNode(receiver)
	defer recvT.Stop()
	srv := httptest.NewServer(recvT)
	defer srv.Close()

	tr := NewHTTPTransport(7, 0, t.TempDir(), lg)
	tr.SetNode(&recorder{})
	tr.AddPeer(1, []string{srv.URL})
	to := uint64(1)
	prop := &raftpb.Message{To: &to, Type: raftpb.MsgProp.Enum(), Entries: []*raftpb.Entry{{Data: []byte("put")}}}
	tr.Send([]*raftpb.Message{prop})
	select {
	case <-receiver.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the proposal never reached raft")
	}
	tr.Send([]*raftpb.Message{msg(1, 1), msg(1, 2)})
	eventually(t, "heartbeats behind a held proposal", func() bool { n, _ := receiver.counts(); return n == 2 })

	tr.Stop()
	select {
	case <-receiver.released:
	case <-time.After(5 * time.Second):
		t.Fatal("the held proposal was not given up when its stream ended")
	}
}

// Frames written by appendFrame read back as the same messages, in order,
// keep-alives skipped, though the reader reuses one buffer: a message read
// earlier must not change when later ones overwrite that buffer.
func TestFramesRoundTrip(t *testing.T) {
	entry := func(size int, fill byte) *raftpb.Message {
		to, index := uint64(2), uint64(size)
		return &raftpb.Message{To: &to, Type: raftpb.MsgApp.Enum(), Index: &index,
			Entries: []*raftpb.Entry{{Data: bytes.Repeat([]byte{fill}, size)}}}
	}
	for _, tc := range []struct {
		name string
		msgs []*raftpb.Message
	}{
		{"one heartbeat", []*raftpb.Message{msg(2, 7)}},
		{"small then smaller", []*raftpb.Message{entry(300, 'a'), entry(10, 'b'), msg(2, 1)}},
		{"growing", []*raftpb.Message{entry(10, 'a'), entry(5000, 'b'), entry(70000, 'c')}},
		{"past the kept buffer", []*raftpb.Message{entry(100, 'a'), entry(keptFrameBuffer+1, 'b'), entry(100, 'c')}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			buf.WriteByte(0) // a keep-alive first
			for _, m := range tc.msgs {
				appendFrame(&buf, m)
				buf.WriteByte(0)
			}
			fr := frameReader{br: bufio.NewReader(&buf)}
			var got []*raftpb.Message
			for {
				m, err := fr.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, m)
			}
			if len(got) != len(tc.msgs) {
				t.Fatalf("read %d messages, wrote %d", len(got), len(tc.msgs))
			}
			for i := range got {
				if !proto.Equal(got[i], tc.msgs[i]) {
					t.Fatalf("message %d differs after reading the rest", i)
				}
			}
		})
	}
}

// held is a raft node without a leader whose proposals wait until the
// test lets them go, recording the order they went in.
type held struct {
	in      chan struct{}
	release chan struct{}
	mu      sync.Mutex
	order   []uint64
}

func (h *held) Step(ctx context.Context, m *raftpb.Message) error {
	h.in <- struct{}{}
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.mu.Lock()
	h.order = append(h.order, m.GetIndex())
	h.mu.Unlock()
	return nil
}

func (h *held) ReportUnreachable(uint64)                   {}
func (h *held) ReportSnapshot(uint64, raft.SnapshotStatus) {}

// The proposals waiting for a leader are bounded in bytes as well as in
// number: past the bound they are dropped, in the order they came.
func TestForwardedProposalsBoundedInBytes(t *testing.T) {
	tr := NewHTTPTransport(7, 1, t.TempDir(), slog.New(slog.DiscardHandler))
	defer tr.Stop()
	h := &held{in: make(chan struct{}, 8), release: make(chan struct{})}
	p := tr.startProposals(h)
	big := make([]byte, proposalQueueBytes*5/8)
	prop := func(index uint64, data []byte) *raftpb.Message {
		return &raftpb.Message{Type: raftpb.MsgProp.Enum(), Index: &index, Entries: []*raftpb.Entry{{Data: data}}}
	}
	p.offer(prop(1, []byte("first"))) // taken at once, held in Step
	<-h.in
	p.offer(prop(2, big))         // queued
	p.offer(prop(3, big))         // over the bound: dropped
	p.offer(prop(4, []byte("x"))) // queued
	close(h.release)
	eventually(t, "the queued proposals stepped", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.order) == 3
	})
	p.stop()
	if got := h.order; !slices.Equal(got, []uint64{1, 2, 4}) {
		t.Fatalf("proposals stepped %v, want [1 2 4]", got)
	}
	if n := p.bytes.Load(); n != 0 {
		t.Fatalf("%d bytes counted as queued after the queue drained", n)
	}
}
