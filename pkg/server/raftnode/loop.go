package raftnode

import (
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// loop writes raft's output to disk and hands committed work to the state
// machine. Whoever steps raft, on whatever goroutine, takes the Ready that
// follows when nobody else is at it (see settle): one that only carries
// messages and read states is handled there and then, and anything that
// must be persisted or applied is passed here. A heartbeat and its answer,
// most of a read round's traffic, then go from the stream that brought
// the message straight to the transport's sender for the peer, where
// raft.Node adds a goroutine of its own and two hand-offs (into it, and
// its Ready back out) to every message.
func (n *Node) loop() {
	defer close(n.donec)
	defer close(n.committedc)
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	err := n.campaignIfAlone()
	for err == nil {
		select {
		case <-ticker.C:
			err = n.onLoop(func(rn *raft.RawNode) { rn.Tick() })
			if err == nil && n.lead.Load() == raft.None {
				// The voters are known once the applier re-applies the
				// configuration of a restarted log, a few ticks at most.
				err = n.campaignIfAlone()
			}
		case rd := <-n.readyc:
			err = n.handleReady(rd)
			if err == nil {
				n.advance(rd)
				err = n.drain(true)
			}
		case <-n.stopc:
			return
		}
	}
	// A member that cannot persist its log must not go on acknowledging
	// anything; stopping is the safe answer. The loop keeps the right to
	// take Readys, so nobody else takes one.
	n.lg.Error("raft ready failed; stopping raft loop", "err", err)
}

// onLoop is withRaft for the loop's own goroutine, which handles
// whatever Ready follows itself rather than passing it to itself.
func (n *Node) onLoop(f func(rn *raft.RawNode)) error {
	n.mu.Lock()
	f(n.rn)
	return n.settle(true)
}

// settle is called with n.mu held, after raft was stepped, and releases
// it. If raft has output and nobody is taking Readys, the caller becomes
// the one who does, until raft has nothing more to say.
func (n *Node) settle(isLoop bool) error {
	if n.draining || !n.rn.HasReady() {
		n.mu.Unlock()
		return nil
	}
	n.draining = true
	n.mu.Unlock()
	return n.drain(isLoop)
}

// drain takes Readys while raft has them; the caller holds the right to
// (n.draining). The lock is held only to take a Ready and to advance
// past it: others go on stepping raft meanwhile, and whoever stepped last
// finds the drain in progress and leaves its output to it. Off the loop,
// a Ready with anything to persist or apply goes to the loop, along with
// the right to drain.
func (n *Node) drain(isLoop bool) error {
	for {
		n.mu.Lock()
		if !n.rn.HasReady() {
			n.draining = false
			n.mu.Unlock()
			return nil
		}
		rd := n.rn.Ready()
		if rd.SoftState != nil {
			close(n.softc)
			n.softc = make(chan struct{})
		}
		n.mu.Unlock()
		if !isLoop && !onlyTalk(rd) {
			select {
			case n.readyc <- rd:
			case <-n.stopc:
			}
			return nil
		}
		if err := n.handleReady(rd); err != nil {
			return err
		}
		n.advance(rd)
	}
}

func (n *Node) advance(rd raft.Ready) {
	n.mu.Lock()
	n.rn.Advance(rd)
	n.mu.Unlock()
}

// onlyTalk reports whether rd holds nothing to persist or apply: only
// messages, read states and a soft state, all of which raft lets go out
// before anything else of a Ready is done.
func onlyTalk(rd raft.Ready) bool {
	return rd.HardState == nil && len(rd.Entries) == 0 && len(rd.CommittedEntries) == 0 && raft.IsEmptySnap(rd.Snapshot)
}

func (n *Node) handleReady(rd raft.Ready) error {
	if rd.HardState != nil && rd.HardState.Term != nil {
		n.term.Store(rd.HardState.GetTerm())
	}
	if rd.SoftState != nil {
		n.noteLeader(rd.SoftState.Lead)
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
	if !onlyTalk(rd) {
		if err := n.persist(rd); err != nil {
			return err
		}
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
		}
	}
	return nil
}

// noteLeader records the leader raft reports, logging the change as
// raft.Node would, and signals a new one to whoever waits on NewLeader.
func (n *Node) noteLeader(lead uint64) {
	old, term := n.lead.Swap(lead), n.term.Load()
	switch {
	case lead == old:
		return
	case lead == raft.None:
		n.lg.Info("lost leader", "member", fmt.Sprintf("%x", n.id), "leader", fmt.Sprintf("%x", old), "term", term)
		return
	case old == raft.None:
		n.lg.Info("elected leader", "member", fmt.Sprintf("%x", n.id), "leader", fmt.Sprintf("%x", lead), "term", term)
	default:
		n.lg.Info("changed leader", "member", fmt.Sprintf("%x", n.id), "from", fmt.Sprintf("%x", old), "leader", fmt.Sprintf("%x", lead), "term", term)
	}
	n.leaderChanges.Add(1)
	select {
	case n.leaderc <- struct{}{}:
	default:
	}
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
		if err := n.disk.saveSnapshot(rd.Snapshot); err != nil {
			return err
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
