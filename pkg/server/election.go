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

// peerWaitLimit is how long, at least, start-up waits for a quorum of
// peers to be reachable and a leader to show up before leaving the
// election clock alone; with long election timeouts it waits two of them.
const peerWaitLimit = 5 * time.Second

// recampaignAfter is how many heartbeat intervals a campaign at start-up
// is given to produce a leader before the next reachable voter in ID
// order campaigns.
const recampaignAfter = 5

// fastForwardElection runs once at start-up, on a goroutine the server
// owns until stopc closes.
//
// Once a quorum of voters is reachable, they take turns in ID order: the
// lowest campaigns at once, the next after recampaignAfter heartbeats
// without a leader, and so on round again. A campaign can fail, most
// often because the candidate's log is behind the others' (it was stopped
// before it persisted the last entries they have), and pre-vote makes
// the failed ones harmless; without turns, the others would wait out a
// randomized election timeout of up to twice the configured one.
func (s *Server) fastForwardElection() {
	poll := time.NewTicker(s.cfg.HeartbeatInterval / 2)
	defer poll.Stop()
	deadline := time.After(max(peerWaitLimit, 2*s.cfg.ElectionTimeout))
	var reachable, campaigned time.Time
	forwarded := false
	turn := recampaignAfter * s.cfg.HeartbeatInterval
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
		up, rank := 1, 0
		for _, id := range voters {
			if s.transport.Connected(id) {
				up++
				if id < s.cluster.LocalID() {
					rank++
				}
			}
		}
		if up < quorum {
			continue
		}
		if reachable.IsZero() {
			reachable = time.Now()
		}
		if rank > 0 && !forwarded {
			ticks := s.cfg.electionTicks() - 2
			s.lg.Info("peers reachable; fast-forwarding the election clock", "ticks", ticks, "reachable-voters", up)
			s.node.AdvanceTicks(ticks)
			forwarded = true
		}
		if campaignTurn(time.Since(reachable), rank, up, turn) && (campaigned.IsZero() || time.Since(campaigned) >= turn) {
			s.lg.Info("peers reachable and no leader; campaigning in turn", "rank", rank, "reachable-voters", up)
			s.node.Campaign()
			campaigned = time.Now()
		}
	}
}

// campaignTurn says whether, elapsed after a quorum became reachable, it is
// the turn of the voter ranked rank (0 for the lowest ID) among up
// reachable voters taking turns of length turn.
func campaignTurn(elapsed time.Duration, rank, up int, turn time.Duration) bool {
	if up <= 0 || turn <= 0 {
		return rank == 0
	}
	slot := int(elapsed/turn) % up
	return slot == rank
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
	s.node.TransferLeadership(target)
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
