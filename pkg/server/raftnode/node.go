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

	"github.com/kvd-io/kvd/pkg/server/wal"
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
	raft     raft.Node
	storage  *raft.MemoryStorage
	restored *Restored

	diskMu sync.Mutex // the WAL is written by the loop and by Snapshot
	disk   *disk

	committedc chan Committed
	readStatec chan raft.ReadState
	leaderc    chan struct{}

	running atomic.Bool
	lead    atomic.Uint64
	term    atomic.Uint64
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
	n.id = id
	if n.restored.Fresh && len(peers) > 0 {
		n.raft = raft.StartNode(rc, peers)
	} else {
		n.raft = raft.RestartNode(rc)
	}
	n.running.Store(true)
	go n.loop()
	return nil
}

// Stop ends the loop, stops raft and closes the WAL. The Committed channel
// is closed once the loop has exited.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		close(n.stopc)
		if n.running.Load() {
			<-n.donec
			n.raft.Stop()
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

func (n *Node) loop() {
	defer close(n.donec)
	defer close(n.committedc)
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	n.campaignIfAlone()
	for {
		select {
		case <-ticker.C:
			n.raft.Tick()
			if n.lead.Load() == raft.None {
				// The voters are known once the applier re-applies the
				// configuration of a restarted log, a few ticks at most.
				n.campaignIfAlone()
			}
		case rd := <-n.raft.Ready():
			if err := n.handleReady(rd); err != nil {
				// A member that cannot persist its log must not go on
				// acknowledging anything; stopping is the safe answer.
				n.lg.Error("raft ready failed; stopping raft loop", "err", err)
				return
			}
		case <-n.stopc:
			return
		}
	}
}

// campaignIfAlone starts an election at once when this member is the
// only voter and follows no one: nobody else could win or object, so
// waiting out an election timeout would only delay serving. Raft itself
// would campaign only after a randomized timeout.
func (n *Node) campaignIfAlone() {
	st := n.raft.Status()
	if st.RaftState != raft.StateFollower || st.Lead != raft.None {
		return
	}
	voters := st.Config.Voters
	if len(voters[1]) != 0 || len(voters[0]) != 1 {
		return
	}
	if _, ok := voters[0][n.id]; !ok {
		return
	}
	n.lg.Info("only voter of the cluster; campaigning at once")
	n.Campaign(n.cfg.TickInterval)
}

// Campaign starts an election now, waiting at most wait for raft to take
// the request. Raft refuses it quietly where a campaign is not allowed (a
// learner, a member not in the configuration).
func (n *Node) Campaign(wait time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := n.raft.Campaign(ctx); err != nil {
		n.lg.Warn("campaign", "err", err)
	}
}

// maxAdvanceTicks bounds AdvanceTicks below the raft node's tick buffer,
// which drops ticks it has no room for.
const maxAdvanceTicks = 100

// AdvanceTicks moves the election clock forward by ticks (at most
// maxAdvanceTicks), as if that many heartbeat intervals had passed without
// a leader. A member that restarts with its peers reachable uses it to
// hold an election soon rather than after a whole election timeout; a
// leader's heartbeat still resets the clock, so a member that hears one
// just follows.
func (n *Node) AdvanceTicks(ticks int) {
	for range min(ticks, maxAdvanceTicks) {
		n.raft.Tick()
	}
}

func (n *Node) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		if old := n.lead.Swap(rd.SoftState.Lead); rd.SoftState.Lead != raft.None && rd.SoftState.Lead != old {
			n.leaderChanges.Add(1)
			select {
			case n.leaderc <- struct{}{}:
			default:
			}
		}
	}
	if rd.HardState != nil && rd.HardState.Term != nil {
		n.term.Store(rd.HardState.GetTerm())
	}
	if rd.HardState != nil && rd.HardState.Commit != nil {
		n.commit.Store(rd.HardState.GetCommit())
	}
	if len(rd.ReadStates) > 0 {
		n.offerReadState(rd.ReadStates[len(rd.ReadStates)-1])
	}
	isLeader := n.lead.Load() == n.id
	// A leader may send before its own fsync (Raft thesis 10.2.1): followers
	// persist before acknowledging, so commitment still needs a durable
	// quorum.
	if isLeader {
		n.send(rd.Messages)
	}
	if err := n.persist(rd); err != nil {
		return err
	}
	if !isLeader {
		n.send(rd.Messages)
	}
	if len(rd.CommittedEntries) > 0 || !raft.IsEmptySnap(rd.Snapshot) {
		c := Committed{Entries: rd.CommittedEntries}
		if !raft.IsEmptySnap(rd.Snapshot) {
			c.Snapshot = rd.Snapshot
		}
		select {
		case n.committedc <- c:
		case <-n.stopc:
			return nil
		}
	}
	n.raft.Advance()
	return nil
}

// offerReadState hands over the newest read state without ever blocking
// the raft loop: a stale state still in the channel is replaced, and the
// reader that wanted it asks again.
func (n *Node) offerReadState(rs raft.ReadState) {
	for {
		select {
		case n.readStatec <- rs:
			return
		default:
		}
		select {
		case <-n.readStatec:
		default:
		}
	}
}

func (n *Node) persist(rd raft.Ready) error {
	n.diskMu.Lock()
	defer n.diskMu.Unlock()
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.disk.snaps.SaveSnap(rd.Snapshot); err != nil {
			return fmt.Errorf("save snapshot: %w", err)
		}
		md := rd.Snapshot.GetMetadata()
		if err := n.disk.wal.SaveSnapshot(wal.Snapshot{Index: md.GetIndex(), Term: md.GetTerm()}); err != nil {
			return fmt.Errorf("record snapshot in wal: %w", err)
		}
	}
	if err := n.disk.wal.Save(rd.HardState, rd.Entries); err != nil {
		return fmt.Errorf("save %d entries to wal: %w", len(rd.Entries), err)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.storage.ApplySnapshot(rd.Snapshot); err != nil {
			return fmt.Errorf("apply snapshot to raft storage: %w", err)
		}
	}
	if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
		if err := n.storage.SetHardState(rd.HardState); err != nil {
			return fmt.Errorf("set hard state: %w", err)
		}
	}
	if err := n.storage.Append(rd.Entries); err != nil {
		return fmt.Errorf("append to raft storage: %w", err)
	}
	return nil
}

func (n *Node) send(msgs []*raftpb.Message) {
	if len(msgs) == 0 || n.cfg.Transport == nil {
		return
	}
	n.cfg.Transport.Send(msgs)
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

// Propose asks raft to replicate data. It returns once raft has accepted the
// proposal, not when it commits.
func (n *Node) Propose(ctx context.Context, data []byte) error {
	return n.raft.Propose(ctx, data)
}

// ProposeBatch hands all of data to raft, each as its own entry, in as
// few messages as raft allows: raft's goroutine and its log append then
// pay about once for the lot instead of once a proposal. It reports that
// the first n were handed over and the rest failed with err.
//
// raft's Step does not say whether raft dropped a proposal (a leader drops
// them while it hands over leadership), only Propose waits for that
// answer, and only for one entry. So the first entry goes alone through
// Propose, the middle ones in one MsgProp through Step, and the last
// through Propose again. If raft drops the first, nothing else is sent,
// and all fail with raft's error, which is then certain. If it drops only
// the last, leadership began to move while the batch went in: the middle
// entries may or may not be in the log, so they count as handed over, and
// their callers learn the outcome from apply or time out. An entry is
// never reported dropped that raft took.
func (n *Node) ProposeBatch(ctx context.Context, data [][]byte) (int, error) {
	if len(data) == 0 {
		return 0, nil
	}
	if err := n.raft.Propose(ctx, data[0]); err != nil {
		return 0, err
	}
	last := len(data) - 1
	if last == 0 {
		return 1, nil
	}
	if last > 1 {
		ents := make([]*raftpb.Entry, last-1)
		for i := range ents {
			ents[i] = &raftpb.Entry{Data: data[1+i]}
		}
		if err := n.raft.Step(ctx, &raftpb.Message{Type: raftpb.MsgProp.Enum(), Entries: ents}); err != nil {
			return 1, err
		}
	}
	if err := n.raft.Propose(ctx, data[last]); err != nil {
		return last, err
	}
	return len(data), nil
}

// ProposeConfChange asks raft to replicate a membership change.
func (n *Node) ProposeConfChange(ctx context.Context, cc *raftpb.ConfChangeV2) error {
	return n.raft.ProposeConfChange(ctx, cc)
}

// ReadIndex asks the leader for the commit index that a linearizable read
// must wait for; the answer comes on ReadStates tagged with rctx.
func (n *Node) ReadIndex(ctx context.Context, rctx []byte) error {
	return n.raft.ReadIndex(ctx, rctx)
}

// ApplyConfChange tells raft that the state machine applied cc.
func (n *Node) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	return n.raft.ApplyConfChange(cc)
}

// SetTransport names how messages reach peers; call it before Start.
func (n *Node) SetTransport(t Transport) { n.cfg.Transport = t }

// ReportUnreachable tells raft a peer could not be reached, so it stops
// streaming to it optimistically. Before Start there is nothing to tell:
// the transport probes peers from the moment it knows them.
func (n *Node) ReportUnreachable(id uint64) {
	if n.running.Load() {
		n.raft.ReportUnreachable(id)
	}
}

// ReportSnapshot tells raft how sending a snapshot to a peer went.
func (n *Node) ReportSnapshot(id uint64, st raft.SnapshotStatus) { n.raft.ReportSnapshot(id, st) }

// Step hands a message from a peer to raft.
func (n *Node) Step(ctx context.Context, m *raftpb.Message) error { return n.raft.Step(ctx, m) }

// TransferLeadership asks the leader to hand over to member to. It
// returns at once; watch Leader to see it happen.
func (n *Node) TransferLeadership(ctx context.Context, to uint64) {
	n.raft.TransferLeadership(ctx, n.lead.Load(), to)
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
func (n *Node) Status() raft.Status { return n.raft.Status() }

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
	if err := n.disk.snaps.SaveSnap(snap); err != nil {
		return fmt.Errorf("save snapshot at %d: %w", index, err)
	}
	md := snap.GetMetadata()
	if err := n.disk.wal.SaveSnapshot(wal.Snapshot{Index: md.GetIndex(), Term: md.GetTerm()}); err != nil {
		return fmt.Errorf("record snapshot %d in wal: %w", index, err)
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
