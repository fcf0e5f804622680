package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// Corruption checks compare the members' hashes of the key space at the
// same revision, as etcd's do: members that applied the same log hold the
// same data, so a different hash means a member's database changed under
// it (a bad disk, a bug, a hand edit). The leader checks every
// --corrupt-check-time and raises CORRUPT for the member that differs;
// with the InitialCorruptCheck gate, a restarted member checks itself
// against its peers before it serves and refuses to start on a mismatch.
// Members ask one another over the peer URLs, at etcd's path and in its
// JSON form.

const hashKVPath = "/members/hashkv"

// localHash is the member's hash at a revision, with the store's current
// revision (what etcd's answer puts in its header).
type localHash struct {
	hash            uint32
	rev, compactRev int64
	currentRev      int64
}

func (s *Server) hashAt(rev int64) (localHash, error) {
	cur := s.store.Rev()
	h, hashRev, compactRev, err := s.store.Hash(rev)
	if err != nil {
		return localHash{}, err
	}
	return localHash{hash: h, rev: hashRev, compactRev: compactRev, currentRev: cur}, nil
}

// serveHashKV answers a peer's request for this member's hash.
func (s *Server) serveHashKV(w http.ResponseWriter, r *http.Request) {
	if cid := r.Header.Get("X-Etcd-Cluster-ID"); cid != "" && cid != strconv.FormatUint(s.cluster.ID(), 16) {
		http.Error(w, "cluster ID mismatch", http.StatusPreconditionFailed)
		return
	}
	req := new(pb.HashKVRequest)
	if !decodePeerRequest(w, r, "hashkv request", req) {
		return
	}
	h, err := s.hashAt(req.Revision)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("X-Etcd-Cluster-ID", strconv.FormatUint(s.cluster.ID(), 16))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&pb.HashKVResponse{
		Header:          &pb.ResponseHeader{Revision: h.currentRev, MemberId: s.cluster.LocalID()},
		Hash:            h.hash,
		CompactRevision: h.compactRev,
		HashRevision:    h.rev,
	})
}

// peerHash is one peer's answer, or why there is none.
type peerHash struct {
	id   uint64
	resp *pb.HashKVResponse
	err  error
}

// peerHashes asks every other member for its hash at rev, each URL of a
// member in turn until one answers.
func (s *Server) peerHashes(ctx context.Context, rev int64) []peerHash {
	body, _ := json.Marshal(&pb.HashKVRequest{Revision: rev})
	client := s.peerClient(s.requestTimeout())
	var out []peerHash
	for _, m := range s.cluster.Members() {
		if m.ID == s.cluster.LocalID() || len(m.PeerURLs) == 0 {
			continue
		}
		p := peerHash{id: m.ID}
		for _, u := range m.PeerURLs {
			if p.resp, p.err = s.fetchHash(ctx, client, u, body); p.err == nil {
				break
			}
			s.lg.Warn("hash kv request to peer failed", "peer", fmt.Sprintf("%x", m.ID), "url", u, "revision", rev, "err", p.err)
		}
		out = append(out, p)
	}
	return out
}

func (s *Server) fetchHash(ctx context.Context, c *http.Client, url string, body []byte) (*pb.HashKVResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+hashKVPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Etcd-Cluster-ID", strconv.FormatUint(s.cluster.ID(), 16))
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(string(b), mvcc.ErrCompacted.Error()):
		return nil, rpctypes.ErrCompacted
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(string(b), mvcc.ErrFutureRev.Error()):
		return nil, rpctypes.ErrFutureRev
	case resp.StatusCode == http.StatusPreconditionFailed:
		return nil, rpctypes.ErrClusterIDMismatch
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%s answered %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	out := new(pb.HashKVResponse)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("%s sent a bad hash: %w", url, err)
	}
	return out, nil
}

// initialCorruptCheck compares this member's hash with its peers' at its
// own revision before it serves. Only a peer at the same compaction can
// be compared; a peer that is behind, unreachable or compacted further is
// skipped, as etcd does.
func (s *Server) initialCorruptCheck(ctx context.Context) error {
	local := fmt.Sprintf("%x", s.cluster.LocalID())
	h, err := s.hashAt(0)
	if err != nil {
		return fmt.Errorf("%s failed to hash its own key space: %w", local, err)
	}
	mismatch := 0
	for _, p := range s.peerHashes(ctx, h.rev) {
		peer := fmt.Sprintf("%x", p.id)
		switch {
		case p.resp == nil:
			s.lg.Warn("initial corruption check skips a peer", "peer", peer, "err", p.err)
		case p.resp.Hash == h.hash:
		case p.resp.CompactRevision != h.compactRev:
			s.lg.Warn("initial corruption check: peer compacted differently; not compared", "peer", peer,
				"compact-revision", h.compactRev, "peer-compact-revision", p.resp.CompactRevision)
		default:
			s.lg.Error("initial corruption check: hash differs from a peer's", "peer", peer, "revision", h.rev,
				"compact-revision", h.compactRev, "hash", h.hash, "peer-hash", p.resp.Hash)
			mismatch++
		}
	}
	if mismatch > 0 {
		return fmt.Errorf("%s found data inconsistency with peers", local)
	}
	s.lg.Info("initial corruption check passed", "member", local, "revision", h.rev)
	return nil
}

// corruptCheckLoop runs the periodic check while this member leads.
func (s *Server) corruptCheckLoop() {
	t := time.NewTicker(s.cfg.CorruptCheckTime)
	defer t.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case <-t.C:
		}
		if !s.isLeader() {
			continue
		}
		if err := s.periodicCorruptCheck(); err != nil {
			s.lg.Warn("corruption check", "err", err)
		}
	}
}

// periodicCorruptCheck is the leader's check. It hashes its own key space,
// asks the followers for their hashes at that revision, then waits until
// it has applied everything committed, so no follower can be ahead of
// what it hashes next: a follower that is, or that compacted further, or
// whose hash at the same compaction differs, is corrupt; so is the leader
// when its own hash at the same revision changed meanwhile. Like etcd, it
// raises one alarm a round.
func (s *Server) periodicCorruptCheck() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.requestTimeout())
	defer cancel()
	go func() {
		select {
		case <-s.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	h, err := s.hashAt(0)
	if err != nil {
		return err
	}
	peers := s.peerHashes(ctx, h.rev)
	if err := s.reads.wait(ctx); err != nil {
		return fmt.Errorf("wait for applied entries: %w", err)
	}
	h2, err := s.hashAt(0)
	if err != nil {
		return err
	}
	member, why := corruptVerdict(s.cluster.LocalID(), h, h2, peers)
	if member == 0 {
		s.lg.Debug("corruption check passed", "peers", len(peers), "revision", h.rev)
		return nil
	}
	s.lg.Error("corruption check: raising CORRUPT", "member", fmt.Sprintf("%x", member), "reason", why,
		"revision", h.rev, "leader-hash", h.hash, "leader-compact-revision", h.compactRev)
	return s.raiseAlarm(ctx, member, pb.AlarmType_CORRUPT)
}

// corruptVerdict names the member a periodic check finds corrupt, and
// why, or returns 0. h is the leader's (local's) hash before it asked the
// peers, h2 after it applied everything committed: a peer's revision and
// compaction can be at most h2's, and a peer that hashed at h's revision
// with h's compaction must have h's hash.
func corruptVerdict(local uint64, h, h2 localHash, peers []peerHash) (member uint64, why string) {
	if h2.hash != h.hash && h2.rev == h.rev && h2.compactRev == h.compactRev {
		return local, "own hash changed at the same revision"
	}
	for _, p := range peers {
		switch {
		case p.resp == nil:
		case p.resp.GetHeader().GetRevision() > h2.currentRev:
			return p.id, "follower is ahead of the leader"
		case p.resp.CompactRevision > h2.compactRev:
			return p.id, "follower compacted past the leader"
		case p.resp.CompactRevision == h.compactRev && p.resp.Hash != h.hash:
			return p.id, fmt.Sprintf("hash %d differs from the leader's %d at the same revision and compaction", p.resp.Hash, h.hash)
		}
	}
	return 0, ""
}
