package server

import (
	"context"
	"fmt"
	"time"
)

// A member restarting into a cluster should serve as soon as its data is
// loaded and a leader is known. Raft waits out a randomized election
// timeout (one to two of them) before a follower that hears from no leader
// campaigns; after a restart nobody may be leading, so that wait is the
// bulk of the time to the first served read. Two things shorten it, as
// etcd does: a single voter campaigns at once (raftnode does that), and a
// member of a bigger cluster fast-forwards its election clock once a
// quorum of its peers is reachable, leaving two ticks for a leader's
// heartbeat to arrive first. Of the voters found reachable, the one with
// the lowest ID campaigns at once instead: when a whole cluster restarts,
// one election settles it without anyone waiting out a timeout, and with
// no rival candidate. A member that hears from a leader first just
// follows; the pre-vote phase keeps a member that campaigns early from
// disturbing a leader the others still follow, and if the early candidate
// lost (its log behind), the others' clocks were fast-forwarded anyway.

// peerWaitLimit is how long start-up waits for a quorum of peers to be
// reachable before leaving the election clock alone.
const peerWaitLimit = 5 * time.Second

// recampaignAfter is how many heartbeat intervals the member that
// campaigned at start-up waits for a leader before it campaigns again.
const recampaignAfter = 5

// fastForwardElection runs once at start-up, on a goroutine the server
// owns until stopc closes.
func (s *Server) fastForwardElection() {
	poll := time.NewTicker(s.cfg.HeartbeatInterval / 2)
	defer poll.Stop()
	deadline := time.After(peerWaitLimit)
	var campaigned time.Time
	for {
		select {
		case <-s.stopc:
			return
		case <-deadline:
			return
		case <-poll.C:
		}
		if s.node.Leader() != 0 {
			return // following or leading already
		}
		// Asked each time: a new cluster's members are known only once
		// the applier has applied the bootstrap configuration.
		voters, self := s.votersBesidesSelf()
		if len(voters) == 0 || !self {
			continue // alone (raftnode campaigns), a learner, or not known yet
		}
		quorum := (len(voters)+1)/2 + 1
		up, lowest := 1, true
		for _, id := range voters {
			if s.transport.Connected(id) {
				up++
				lowest = lowest && s.cluster.LocalID() < id
			}
		}
		if up < quorum {
			continue
		}
		if lowest {
			// Again while no leader shows up: a peer that looked
			// reachable may have dropped the votes (it had accepted the
			// connection before its raft started). Pre-vote makes a
			// repeated campaign harmless.
			if campaigned.IsZero() || time.Since(campaigned) > recampaignAfter*s.cfg.HeartbeatInterval {
				s.lg.Info("peers reachable; campaigning at once as the lowest ID among them", "reachable-voters", up)
				s.node.Campaign(s.cfg.HeartbeatInterval)
				campaigned = time.Now()
			}
			continue
		}
		ticks := s.cfg.electionTicks() - 2
		s.lg.Info("peers reachable; fast-forwarding the election clock", "ticks", ticks, "reachable-voters", up)
		s.node.AdvanceTicks(ticks)
		return
	}
}

// votersBesidesSelf lists the cluster's voting members other than this
// one, and says whether this one votes.
func (s *Server) votersBesidesSelf() (others []uint64, self bool) {
	for _, m := range s.cluster.Members() {
		switch {
		case m.IsLearner:
		case m.ID == s.cluster.LocalID():
			self = true
		default:
			others = append(others, m.ID)
		}
	}
	return others, self
}

// handOverLeadership, on a graceful stop, moves leadership to the voter
// this member has reached longest, so the others need not wait out an
// election timeout without a leader (etcd does the same). It gives up
// after an election timeout, when raft aborts a transfer, or sooner when
// the transferee stops answering (the whole cluster stopping at once).
func (s *Server) handOverLeadership() {
	if s.node.Leader() != s.cluster.LocalID() {
		return
	}
	voters, _ := s.votersBesidesSelf()
	var target uint64
	var since time.Time
	for _, id := range voters {
		t := s.transport.ActiveSince(id)
		if !t.IsZero() && (since.IsZero() || t.Before(since)) {
			target, since = id, t
		}
	}
	if target == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ElectionTimeout)
	defer cancel()
	start := time.Now()
	s.node.TransferLeadership(ctx, target)
	tick := time.NewTicker(s.cfg.HeartbeatInterval / 2)
	defer tick.Stop()
	for s.node.Leader() != target {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		if ctx.Err() != nil || s.transport.ActiveSince(target).IsZero() {
			s.lg.Warn("leadership hand-over on stop failed", "to", fmt.Sprintf("%x", target))
			return
		}
	}
	s.lg.Info("handed leadership over before stopping", "to", fmt.Sprintf("%x", target), "took", time.Since(start))
}
