package raftnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// memNet carries raft messages between Nodes of one test process. Each
// member's inbox is drained by a goroutine of its own, as a stream reader
// would be; a message to a member that is not attached is lost.
type memNet struct {
	mu     sync.Mutex
	inbox  map[uint64]chan *raftpb.Message
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newMemNet(t *testing.T) *memNet {
	ctx, cancel := context.WithCancel(context.Background())
	net := &memNet{inbox: map[uint64]chan *raftpb.Message{}, ctx: ctx, cancel: cancel}
	t.Cleanup(func() {
		cancel()
		net.wg.Wait()
	})
	return net
}

// attach routes messages for id to n from now on.
func (net *memNet) attach(id uint64, n *Node) {
	in := make(chan *raftpb.Message, 1024)
	net.mu.Lock()
	net.inbox[id] = in
	net.mu.Unlock()
	net.wg.Add(1)
	go func() {
		defer net.wg.Done()
		for {
			select {
			case m := <-in:
				_ = n.Step(net.ctx, m)
			case <-net.ctx.Done():
				return
			}
		}
	}()
}

// detach loses every message for id from now on.
func (net *memNet) detach(id uint64) {
	net.mu.Lock()
	defer net.mu.Unlock()
	delete(net.inbox, id)
}

func (net *memNet) Send(msgs []*raftpb.Message) {
	net.mu.Lock()
	defer net.mu.Unlock()
	for _, m := range msgs {
		if in, ok := net.inbox[m.GetTo()]; ok {
			select {
			case in <- m:
			default:
			}
		}
	}
}

// startMember opens member id of a new cluster of the given voters, with
// messages carried by net, and attaches it.
func startMember(t *testing.T, net *memNet, id uint64, voters ...uint64) *Node {
	t.Helper()
	cfg := testConfig(t.TempDir())
	cfg.Transport = net
	n, _, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	var peers []raft.Peer
	for _, v := range voters {
		peers = append(peers, raft.Peer{ID: v})
	}
	net.attach(id, n)
	if err := n.Start(id, peers); err != nil {
		t.Fatal(err)
	}
	// The state machine's part: apply conf changes as they commit.
	go func() {
		for c := range n.Committed() {
			for _, e := range c.Entries {
				if _, err := applyConfEntry(n, e); err != nil {
					t.Errorf("member %d: %v", id, err)
				}
			}
		}
	}()
	return n
}

// TestProposalWaitsForLeader: raft drops a proposal while it knows no
// leader; Propose waits for one instead, and the proposal reaches the
// leader once there is one.
func TestProposalWaitsForLeader(t *testing.T) {
	net := newMemNet(t)
	a := startMember(t, net, 1, 1, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	proposed := make(chan error, 1)
	go func() { proposed <- a.Propose(ctx, []byte("early")) }()
	select {
	case err := <-proposed:
		t.Fatalf("Propose returned %v with no leader possible", err)
	case <-time.After(300 * time.Millisecond):
	}

	startMember(t, net, 2, 1, 2)
	select {
	case err := <-proposed:
		if err != nil {
			t.Fatalf("Propose once a leader was elected: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Propose still waiting after a leader was elected")
	}
}

// TestProposalWaitEndsWithContext: a proposal that waits for a leader
// gives up with its context, not with raft's drop.
func TestProposalWaitEndsWithContext(t *testing.T) {
	net := newMemNet(t)
	a := startMember(t, net, 1, 1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := a.Propose(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Propose without a leader = %v, want the context's deadline", err)
	}
	if n, err := a.ProposeBatch(ctx, [][]byte{[]byte("y"), []byte("z")}); n != 0 || err == nil {
		t.Fatalf("ProposeBatch without a leader = %d, %v", n, err)
	}
}

// TestProposeBatchDroppedWholeDuringTransfer: a leader handing over
// leadership drops proposals, and a batch is dropped whole, so its
// proposers all hear raft's reason and none of it can commit later.
func TestProposeBatchDroppedWholeDuringTransfer(t *testing.T) {
	net := newMemNet(t)
	nodes := map[uint64]*Node{1: startMember(t, net, 1, 1, 2), 2: startMember(t, net, 2, 1, 2)}
	leader := awaitMemLeader(t, nodes)
	var other uint64 = 1
	if leader.id == 1 {
		other = 2
	}
	// The transfer cannot finish while the other member hears nothing.
	net.detach(other)
	leader.TransferLeadership(other)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := leader.ProposeBatch(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	if n != 0 || !errors.Is(err, raft.ErrProposalDropped) {
		t.Fatalf("ProposeBatch during a transfer = %d, %v; want 0, %v", n, err, raft.ErrProposalDropped)
	}
}

// awaitMemLeader waits for one of nodes to lead and returns it.
func awaitMemLeader(t *testing.T, nodes map[uint64]*Node) *Node {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.Leader() == n.id {
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader elected")
	return nil
}

// TestReadIndexOnEveryMember: a read index asked of the leader and of
// each follower comes back tagged with its request and at least at the
// commit index of a write acknowledged before it. Followers' requests and
// the heartbeats that confirm them are handled by the goroutines that
// step them, not by the loop.
func TestReadIndexOnEveryMember(t *testing.T) {
	net := newMemNet(t)
	ids := []uint64{1, 2, 3}
	nodes := map[uint64]*Node{}
	for _, id := range ids {
		nodes[id] = startMember(t, net, id, ids...)
	}
	leader := awaitMemLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leader.Propose(ctx, []byte("w")); err != nil {
		t.Fatal(err)
	}
	for leader.CommitIndex() == 0 || leader.Status().Applied < leader.CommitIndex() {
		if ctx.Err() != nil {
			t.Fatal("write never committed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	committed := leader.CommitIndex()

	for round := range 20 {
		for _, id := range ids {
			n := nodes[id]
			rctx := fmt.Appendf(nil, "read-%d-%d", id, round)
			if got := readIndex(ctx, t, n, rctx); got < committed {
				t.Fatalf("member %d: read index %d below the commit index %d of an acknowledged write", id, got, committed)
			}
		}
	}
}

// readIndex asks n for a read index and waits for the answer to rctx,
// asking again if raft dropped the request.
func readIndex(ctx context.Context, t *testing.T, n *Node, rctx []byte) uint64 {
	t.Helper()
	for {
		if err := n.ReadIndex(ctx, rctx); err != nil {
			t.Fatal(err)
		}
		retry := time.After(250 * time.Millisecond)
		for waiting := true; waiting; {
			select {
			case rs := <-n.ReadStates():
				if bytes.Equal(rs.RequestCtx, rctx) {
					return rs.Index
				}
			case <-retry:
				waiting = false
			case <-ctx.Done():
				t.Fatalf("no read index for %s", rctx)
			}
		}
	}
}
