// Package raftnode runs a member's go.etcd.io/raft node: it ticks the clock,
// persists each Ready to the WAL with one fdatasync, hands committed entries
// to the state machine in order, sends messages to peers, and records raft
// snapshots so the WAL can be truncated behind them.
//
// The package knows nothing of keys or requests: entries are opaque bytes,
// and the server decides what they mean.
package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Transport delivers raft messages to other members. A single-member
// cluster has none.
type Transport interface {
	Send(msgs []*raftpb.Message)
}

// Config describes the raft node of one member.
type Config struct {
	// Dir holds the member's wal/ and snap/ folders.
	Dir string
	// Metadata is stored in a newly created WAL and returned on restart.
	Metadata []byte

	// CatchUpEntries is how many entries stay in memory behind a snapshot
	// so a follower that lags a little can catch up from the log instead
	// of needing the whole database.
	CatchUpEntries uint64

	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	Transport      Transport
	Logger         *slog.Logger
	// OnWALSync, when set, is told how long each WAL fdatasync took.
	OnWALSync func(time.Duration)
}

// Committed is a batch of raft output that the state machine applies in
// order: first the snapshot, if any, then the entries.
type Committed struct {
	Snapshot *raftpb.Snapshot
	Entries  []*raftpb.Entry
}

// Node is a running raft member.
type Node struct {
	cfg      Config
	lg       *slog.Logger
	id       uint64
	storage  *raft.MemoryStorage
	restored *Restored

	// mu guards rn, which is not safe for concurrent use, draining and
	// softc.
	mu sync.Mutex
	rn *raft.RawNode
	// draining is set while some goroutine takes raft's Readys; nobody
	// else may take one then (see settle).
	draining bool
	// readyc passes the loop a Ready to persist or apply, taken by
	// another goroutine, with the right to take the next ones.
	readyc chan raft.Ready
	// softc is closed, and replaced, each time a Ready with a new
	// SoftState is taken: a proposal that raft dropped for want of a
	// leader waits on it.
	softc chan struct{}

	diskMu sync.Mutex // the WAL is written by the loop and by Snapshot
	disk   *disk

	committedc chan Committed
	readStatec chan raft.ReadState
	leaderc    chan struct{}

	lead atomic.Uint64
	term atomic.Uint64
	// commit is raft's commit index; leaderChanges counts the leaders
	// seen. Both are kept for metrics, read when scraped.
	commit        atomic.Uint64
	leaderChanges atomic.Uint64

	stopOnce sync.Once
	stopc    chan struct{}
	donec    chan struct{}
}

// Open loads the member's raft state from Dir, creating a WAL with
// cfg.Metadata when there is none. Raft itself starts with Start, once the
// caller knows the member's identity (from Restored.Metadata on restart).
func Open(cfg Config) (*Node, *Restored, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TickInterval <= 0 {
		return nil, nil, errors.New("raftnode: tick interval must be positive")
	}
	storage := raft.NewMemoryStorage()
	d, restored, err := openDisk(cfg.Dir, cfg.Metadata, storage, cfg.Logger)
	if err != nil {
		return nil, nil, err
	}
	if cfg.OnWALSync != nil {
		d.wal.OnSync(cfg.OnWALSync)
	}
	n := &Node{
		cfg:        cfg,
		lg:         cfg.Logger,
		storage:    storage,
		restored:   restored,
		disk:       d,
		committedc: make(chan Committed, 16),
		readStatec: make(chan raft.ReadState, 1),
		leaderc:    make(chan struct{}, 1),
		softc:      make(chan struct{}),
		readyc:     make(chan raft.Ready),
		stopc:      make(chan struct{}),
		donec:      make(chan struct{}),
	}
	return n, restored, nil
}

// Start starts raft as member id and the loop that drives it, on a
// goroutine the Node owns until Stop. peers bootstraps a new cluster and is
// ignored when the member restarts from its WAL; a new member with no peers
// joins an existing cluster, whose leader sends it the log or a snapshot.
func (n *Node) Start(id uint64, peers []raft.Peer) error {
	rc := &raft.Config{
		ID:              id,
		ElectionTick:    n.cfg.ElectionTicks,
		HeartbeatTick:   n.cfg.HeartbeatTicks,
		Storage:         n.storage,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 512,
		CheckQuorum:     true,
		PreVote:         true,
		Logger:          raftLogger{n.lg},
	}
	if snap := n.restored.Snapshot; snap != nil {
		rc.Applied = snap.GetMetadata().GetIndex()
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	if n.restored.Fresh && len(peers) > 0 {
		if err := rn.Bootstrap(peers); err != nil {
			return fmt.Errorf("bootstrap raft with %d peers: %w", len(peers), err)
		}
	}
	n.id = id
	n.mu.Lock()
	n.rn = rn
	n.mu.Unlock()
	go n.loop()
	return nil
}

// Stop ends the loop, stops raft and closes the WAL. The Committed channel
// is closed once the loop has exited.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		close(n.stopc)
		n.mu.Lock()
		started := n.rn != nil
		n.mu.Unlock()
		if started {
			<-n.donec
		} else {
			close(n.committedc)
		}
		n.diskMu.Lock()
		defer n.diskMu.Unlock()
		if err := n.disk.close(); err != nil {
			n.lg.Warn("close wal", "err", err)
		}
	})
}

// Committed returns the channel of committed work for the state machine.
// It is closed when the node stops.
func (n *Node) Committed() <-chan Committed { return n.committedc }

// ReadStates returns the channel on which ReadIndex answers arrive.
func (n *Node) ReadStates() <-chan raft.ReadState { return n.readStatec }

// NewLeader receives when the member learns of a leader other than the one
// it knew (one signal is kept while nobody listens), so that a request raft
// dropped for want of a leader can be sent again at once.
func (n *Node) NewLeader() <-chan struct{} { return n.leaderc }

// campaignIfAlone starts an election at once when this member is the
// only voter and follows no one: nobody else could win or object, so
// waiting out an election timeout would only delay serving. Raft itself
// would campaign only after a randomized timeout.
func (n *Node) campaignIfAlone() error {
	st := n.Status()
	if st.RaftState != raft.StateFollower || st.Lead != raft.None {
		return nil
	}
	voters := st.Config.Voters
	if len(voters[1]) != 0 || len(voters[0]) != 1 {
		return nil
	}
	if _, ok := voters[0][n.id]; !ok {
		return nil
	}
	n.lg.Info("only voter of the cluster; campaigning at once")
	return n.onLoop(func(rn *raft.RawNode) { _ = rn.Campaign() })
}

// Campaign starts an election now. Raft refuses it quietly where a
// campaign is not allowed (a learner, a member not in the configuration).
func (n *Node) Campaign() {
	n.withRaft(func(rn *raft.RawNode) { _ = rn.Campaign() })
}

// AdvanceTicks moves the election clock forward by ticks, as if that many
// heartbeat intervals had passed without a leader. A member that restarts
// with its peers reachable uses it to hold an election soon rather than
// after a whole election timeout; a leader's heartbeat still resets the
// clock, so a member that hears one just follows.
func (n *Node) AdvanceTicks(ticks int) {
	n.withRaft(func(rn *raft.RawNode) {
		for range ticks {
			rn.Tick()
		}
	})
}

// withRaft runs f on raft under the lock, then takes the Ready that
// follows if nobody else is at it. It reports false, without running f,
// before Start. Never call it on the loop's goroutine: see onLoop.
func (n *Node) withRaft(f func(rn *raft.RawNode)) bool {
	n.mu.Lock()
	if n.rn == nil {
		n.mu.Unlock()
		return false
	}
	f(n.rn)
	_ = n.settle(false) // only the loop persists, and so fails
	return true
}

// Propose asks raft to replicate data. It returns once raft has accepted the
// proposal, not when it commits.
func (n *Node) Propose(ctx context.Context, data []byte) error {
	return n.stepProposal(ctx, &raftpb.Message{Type: raftpb.MsgProp.Enum(), Entries: []*raftpb.Entry{{Data: data}}})
}

// ProposeBatch hands all of data to raft in one message, each as its own
// entry, so that raft's step and its log append pay once for the lot
// instead of once a proposal. raft takes or drops a proposal message
// whole, so n is either len(data) or 0, with raft's reason.
func (n *Node) ProposeBatch(ctx context.Context, data [][]byte) (int, error) {
	if len(data) == 0 {
		return 0, nil
	}
	ents := make([]*raftpb.Entry, len(data))
	for i, d := range data {
		ents[i] = &raftpb.Entry{Data: d}
	}
	if err := n.stepProposal(ctx, &raftpb.Message{Type: raftpb.MsgProp.Enum(), Entries: ents}); err != nil {
		return 0, err
	}
	return len(data), nil
}

// ProposeConfChange asks raft to replicate a membership change.
func (n *Node) ProposeConfChange(ctx context.Context, cc *raftpb.ConfChangeV2) error {
	typ, data, err := raftpb.MarshalConfChange(cc)
	if err != nil {
		return fmt.Errorf("encode conf change: %w", err)
	}
	return n.stepProposal(ctx, &raftpb.Message{Type: raftpb.MsgProp.Enum(), Entries: []*raftpb.Entry{{Type: typ.Enum(), Data: data}}})
}

// stepProposal hands raft a proposal. While raft knows no leader it drops
// proposals; like raft.Node, this waits instead until a leader is known
// (or ctx ends), so that a proposal made during an election goes to the
// winner rather than failing at once. Any other refusal is returned.
func (n *Node) stepProposal(ctx context.Context, m *raftpb.Message) error {
	for {
		select {
		case <-n.stopc:
			return raft.ErrStopped
		default:
		}
		n.mu.Lock()
		if n.rn == nil {
			n.mu.Unlock()
			return raft.ErrStopped
		}
		err := n.rn.Step(m)
		if !errors.Is(err, raft.ErrProposalDropped) || n.rn.BasicStatus().Lead != raft.None {
			_ = n.settle(false)
			return err
		}
		changed := n.softc
		n.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopc:
			return raft.ErrStopped
		}
	}
}

// ReadIndex asks the leader for the commit index that a linearizable read
// must wait for; the answer comes on ReadStates tagged with rctx. raft
// drops the request quietly while it knows no leader.
func (n *Node) ReadIndex(ctx context.Context, rctx []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !n.withRaft(func(rn *raft.RawNode) { rn.ReadIndex(rctx) }) {
		return raft.ErrStopped
	}
	return nil
}

// ApplyConfChange tells raft that the state machine applied cc.
func (n *Node) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	var cs *raftpb.ConfState
	n.withRaft(func(rn *raft.RawNode) { cs = rn.ApplyConfChange(cc) })
	return cs
}

// SetTransport names how messages reach peers; call it before Start.
func (n *Node) SetTransport(t Transport) { n.cfg.Transport = t }

// ReportUnreachable tells raft a peer could not be reached, so it stops
// streaming to it optimistically. Before Start there is nothing to tell:
// the transport probes peers from the moment it knows them.
func (n *Node) ReportUnreachable(id uint64) {
	n.withRaft(func(rn *raft.RawNode) { rn.ReportUnreachable(id) })
}

// ReportSnapshot tells raft how sending a snapshot to a peer went.
func (n *Node) ReportSnapshot(id uint64, st raft.SnapshotStatus) {
	n.withRaft(func(rn *raft.RawNode) { rn.ReportSnapshot(id, st) })
}

// Step hands a message from a peer to raft. A proposal a follower forwards
// waits for a leader as the member's own do; raft ignores any other
// message it cannot use (from a removed member, say), and so does Step.
func (n *Node) Step(ctx context.Context, m *raftpb.Message) error {
	if m.GetType() == raftpb.MsgProp {
		return n.stepProposal(ctx, m)
	}
	n.withRaft(func(rn *raft.RawNode) { _ = rn.Step(m) })
	return nil
}

// TransferLeadership asks the leader to hand over to member to. It
// returns at once; watch Leader to see it happen.
func (n *Node) TransferLeadership(to uint64) {
	n.withRaft(func(rn *raft.RawNode) { rn.TransferLeader(to) })
}

// Leader returns the ID of the known leader, or 0.
func (n *Node) Leader() uint64 { return n.lead.Load() }

// LeaderChanges counts the leaders this node has seen since it started,
// the first one included.
func (n *Node) LeaderChanges() uint64 { return n.leaderChanges.Load() }

// CommitIndex is raft's commit index as last persisted.
func (n *Node) CommitIndex() uint64 { return n.commit.Load() }

// Term returns the current raft term as last persisted.
func (n *Node) Term() uint64 { return n.term.Load() }

// Status returns raft's view of the node.
func (n *Node) Status() raft.Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rn == nil {
		return raft.Status{}
	}
	return n.rn.Status()
}

// Snapshot records a raft snapshot at index, after the state machine has
// made everything up to index durable, then drops the log behind it. The
// snapshot carries no data: kvd's state lives in its own database file,
// which is what a lagging peer is sent.
func (n *Node) Snapshot(index uint64, cs *raftpb.ConfState) error {
	snap, err := n.storage.CreateSnapshot(index, cs, nil)
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create raft snapshot at %d: %w", index, err)
	}
	n.diskMu.Lock()
	defer n.diskMu.Unlock()
	if err := n.disk.saveSnapshot(snap); err != nil {
		return err
	}
	if err := n.disk.wal.ReleaseLockTo(index); err != nil {
		return fmt.Errorf("release wal before %d: %w", index, err)
	}
	if err := n.disk.snaps.Purge(5); err != nil {
		n.lg.Warn("purge old snapshots", "err", err)
	}
	return n.compact(index)
}

// CompactLog drops from memory the log entries more than CatchUpEntries
// behind index, an applied index, without writing anything: the WAL keeps
// them until the next Snapshot. A lagging peer that needs an entry
// dropped is sent the database, as after a Snapshot. Done every few
// hundred entries, as etcd does, this bounds the log held in memory to
// about CatchUpEntries entries instead of up to --snapshot-count more.
func (n *Node) CompactLog(index uint64, cs *raftpb.ConfState) error {
	if _, err := n.storage.CreateSnapshot(index, cs, nil); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		return fmt.Errorf("create raft snapshot in memory at %d: %w", index, err)
	}
	return n.compact(index)
}

func (n *Node) compact(index uint64) error {
	if keep := n.cfg.CatchUpEntries; index > keep {
		if err := n.storage.Compact(index - keep); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return fmt.Errorf("compact raft log to %d: %w", index-keep, err)
		}
	}
	return nil
}
