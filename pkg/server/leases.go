package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/lease"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// Leases change through raft like keys do (grant, revoke, checkpoint);
// their time is kept by the leader alone, so renewals and questions about
// how long a lease has left go to the leader, over the peer URLs when
// they reach a follower (lease_peer.go).

const (
	// leaseTick is how often the leader looks for expired leases and due
	// checkpoints: how late, at most, a lease is noticed.
	leaseTick = 100 * time.Millisecond
	// revokesPerTick bounds the revocations proposed a tick, so that a
	// mass expiry does not flood raft: 2,000 a second, twice etcd's rate,
	// as a revocation costs kvd about a tenth of what it costs etcd.
	revokesPerTick = 200
	// checkpointsPerTick bounds the leases one checkpoint entry carries.
	checkpointsPerTick = 1000
)

// recoverLeases loads the leases stored in the database, with the keys
// attached to them.
func (s *Server) recoverLeases() error {
	var err error
	s.be.Read(func(tx backend.ReadTx) {
		err = s.lessor.Recover(tx, func(yield func([]byte, int64)) { err = s.leasedKeys(yield) })
	})
	if err != nil {
		return fmt.Errorf("recover leases: %w", err)
	}
	return nil
}

// leasedKeys reports every key that has a lease, reading the key space a
// chunk at a time so that a large store is never in memory at once.
func (s *Server) leasedKeys(yield func([]byte, int64)) error {
	const chunk = 1000
	from := []byte{0}
	for {
		rr, err := s.store.Range(from, []byte{0}, mvcc.RangeOptions{Limit: chunk})
		if err != nil {
			return err
		}
		for _, kv := range rr.KVs {
			if kv.Lease != lease.None {
				yield(kv.Key, kv.Lease)
			}
		}
		if len(rr.KVs) < chunk {
			return nil
		}
		from = append(rr.KVs[len(rr.KVs)-1].Key, 0)
	}
}

// leaseLoop revokes expired leases and checkpoints long ones while this
// member leads, until the member stops. It owns the proposals it starts.
func (s *Server) leaseLoop() {
	var inflight sync.WaitGroup
	defer inflight.Wait()
	tick := time.NewTicker(leaseTick)
	defer tick.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case <-tick.C:
		}
		if !s.isLeader() {
			s.lessor.Demote()
			continue
		}
		for _, id := range s.lessor.Expired(revokesPerTick) {
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				s.proposeLeaseChange(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}})
			}()
		}
		if due := s.lessor.DueCheckpoints(checkpointsPerTick); len(due) > 0 {
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				s.proposeLeaseChange(checkpointRequest(due))
			}()
		}
	}
}

// proposeLeaseChange proposes a change the leader makes of its own accord.
// A failure is only logged: an expired lease is offered again, and a
// missed checkpoint only means a lease may get more time after a leader
// change.
func (s *Server) proposeLeaseChange(r *pb.InternalRaftRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout())
	defer cancel()
	res, err := s.propose(ctx, r)
	if err == nil {
		err = res.Err
	}
	if err != nil && !errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
		s.lg.Debug("lease change not applied", "err", err)
	}
}

func checkpointRequest(due []lease.CheckpointEntry) *pb.InternalRaftRequest {
	cps := make([]*pb.LeaseCheckpoint, len(due))
	for i, d := range due {
		cps[i] = &pb.LeaseCheckpoint{ID: d.ID, Remaining_TTL: d.Remaining}
	}
	return &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: cps}}
}

// LeaseGrant replicates a new lease. The ID is chosen here when the client
// left it to the server: unique across members, positive, never 0.
func (s *Server) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if err := s.checkQuota(ctx, r); err != nil {
		return nil, err
	}
	for r.ID == lease.None {
		r.ID = int64(s.ids.id() & (1<<63 - 1))
	}
	return proposeKV[*pb.LeaseGrantResponse](ctx, s, &pb.InternalRaftRequest{LeaseGrant: r})
}

// LeaseRevoke replicates the end of a lease and the deletion of its keys.
func (s *Server) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	return proposeKV[*pb.LeaseRevokeResponse](ctx, s, &pb.InternalRaftRequest{LeaseRevoke: r})
}

// LeaseLeases lists the leases this member knows, which are every lease
// applied so far.
func (s *Server) LeaseLeases(context.Context) (*pb.LeaseLeasesResponse, error) {
	ids := s.lessor.Leases()
	resp := &pb.LeaseLeasesResponse{Header: &pb.ResponseHeader{}, Leases: make([]*pb.LeaseStatus, len(ids))}
	for i, id := range ids {
		resp.Leases[i] = &pb.LeaseStatus{ID: id}
	}
	return resp, nil
}

// LeaseRenew renews a lease on the leader and returns its TTL.
func (s *Server) LeaseRenew(ctx context.Context, id int64) (int64, error) {
	var ttl int64
	err := s.onLeaseLeader(ctx, func() error {
		var err error
		ttl, err = s.renewHere(ctx, id)
		return err
	}, func(leader []string) error {
		ans, err := s.askLeaseLeader(ctx, leader, leaseQuestion{Op: opRenew, ID: id})
		ttl = ans.TTL
		return err
	})
	return ttl, err
}

// renewHere renews a lease on the primary. A lease with a checkpointed
// remaining TTL has it reset through raft first: otherwise a leader change
// after this renewal would give it back only what was left before it.
func (s *Server) renewHere(ctx context.Context, id int64) (int64, error) {
	if s.lessor.NeedsReset(id) {
		res, err := s.propose(ctx, checkpointRequest([]lease.CheckpointEntry{{ID: id}}))
		if err != nil {
			return 0, err
		}
		if res.Err != nil {
			return 0, res.Err
		}
	}
	return s.lessor.Renew(id)
}

// LeaseTimeToLive reports a lease's granted and remaining TTL, as the
// leader knows it.
func (s *Server) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp := &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{}, ID: r.ID}
	err := s.onLeaseLeader(ctx, func() error {
		st, err := s.lessor.TimeToLive(r.ID, r.Keys)
		resp.TTL, resp.GrantedTTL = st.TTL, st.GrantedTTL
		for _, k := range st.Keys {
			resp.Keys = append(resp.Keys, []byte(k))
		}
		return err
	}, func(leader []string) error {
		ans, err := s.askLeaseLeader(ctx, leader, leaseQuestion{Op: opTimeToLive, ID: r.ID, Keys: r.Keys})
		resp.TTL, resp.GrantedTTL, resp.Keys = ans.TTL, ans.GrantedTTL, ans.Keys
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// onLeaseLeader runs here when this member is the primary lessor, or
// remote with the leader's peer URLs otherwise, until one gives an
// answer: while a leader is being elected, or has not yet taken over
// lease time, it waits and tries again, bounded by the request timeout.
// The leader's answer comes at once, with no timer of its own: it is the
// common case, a renewal on every keep-alive.
func (s *Server) onLeaseLeader(ctx context.Context, here func() error, remote func(leader []string) error) error {
	if s.isLearner() {
		return rpctypes.ErrGRPCNotSupportedForLearner
	}
	if s.isLeader() {
		if answer, ok := settled(here()); ok {
			return answer
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	for {
		err := errNoLeaseLeader
		if s.isLeader() {
			err = here()
		} else if leader := s.cluster.Member(s.node.Leader()); leader != nil {
			err = remote(leader.PeerURLs)
		}
		if answer, ok := settled(err); ok {
			return answer
		}
		select {
		case <-ctx.Done():
			return s.proposeError(ctx, ctx.Err())
		case <-s.stopc:
			return errStopped
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// settled is the error a client gets for err, and whether it is an
// answer at all: not while no member keeps lease time.
func settled(err error) (error, bool) {
	switch {
	case err == nil:
		return nil, true
	case errors.Is(err, lease.ErrNotFound), errors.Is(err, rpctypes.ErrGRPCLeaseNotFound):
		return rpctypes.ErrGRPCLeaseNotFound, true
	case errors.Is(err, errNoLeaseLeader), errors.Is(err, lease.ErrNotPrimary), errors.Is(err, rpctypes.ErrGRPCNotLeader):
		return nil, false
	}
	return apply.ToGRPC(err), true
}

// errNoLeaseLeader: no member keeps lease time right now.
var errNoLeaseLeader = errors.New("no primary lessor yet")
