package concurrency

import (
	"context"
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/kvd-io/kvd/pkg/client"
)

// The errors an Election reports, with the texts of etcd's.
var (
	// ErrElectionNotLeader: Proclaim by a participant that is not (or no
	// longer) the leader.
	ErrElectionNotLeader = errors.New("election: not leader")
	// ErrElectionNoLeader: Leader on an election nobody campaigns in.
	ErrElectionNoLeader = errors.New("election: no leader")
	// ErrElectionNotExist is for callers that name an election to
	// resume and find no such leader key; clientv3 v3.7.3 has no such
	// error, and nothing in this package returns it.
	ErrElectionNotExist = errors.New("election: not exist")
)

// Election is a leader election shared through a cluster. Each candidate
// writes prefix/leaseID, attached to its session's lease, with its value;
// the one whose key was created first leads, and its value is the
// election's. An Election is not safe for concurrent use, except Observe
// and Leader, which only read.
type Election struct {
	s   *Session
	pfx string // the prefix with its trailing slash

	key    string // this candidate's key once campaigning, "" otherwise
	rev    int64  // its create revision
	leader *Session
	hdr    *pb.ResponseHeader
}

// NewElection joins the election on the keys under pfx + "/".
func NewElection(s *Session, pfx string) *Election {
	return &Election{s: s, pfx: pfx + "/"}
}

// ResumeElection takes back a leadership won earlier (by this process
// before a restart, say), known by the leader key and its create
// revision. Unlike clientv3's, it appends the slash to pfx as
// NewElection does, so Leader and Observe read the same keys.
func ResumeElection(s *Session, pfx string, leaderKey string, leaderRev int64) *Election {
	return &Election{s: s, pfx: pfx + "/", key: leaderKey, rev: leaderRev, leader: s}
}

// Campaign enters val as a candidate and returns once it leads, or with
// ctx's error, in which case it withdraws. A session that already
// campaigns keeps its place in line and updates its value.
func (e *Election) Campaign(ctx context.Context, val string) error {
	c := e.s.Client()
	key := fmt.Sprintf("%s%x", e.pfx, e.s.Lease())
	r, err := c.Txn(ctx).
		If(client.Compare(client.CreateRevision(key), "=", 0)).
		Then(client.OpPut(key, val, client.WithLease(e.s.Lease()))).
		Else(client.OpGet(key)).
		Commit()
	if err != nil {
		return err
	}
	e.key, e.rev, e.leader = key, r.Header.Revision, e.s
	if !r.Succeeded {
		kvs := r.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return fmt.Errorf("election: key %q neither created nor found", key)
		}
		e.rev = kvs[0].CreateRevision
		if string(kvs[0].Value) != val {
			if err := e.Proclaim(ctx, val); err != nil {
				_ = e.Resign(ctx)
				return err
			}
		}
	}
	if err := waitDeletes(ctx, c, e.pfx, e.rev-1); err != nil {
		if ctx.Err() != nil {
			// The caller gave up: leave the line, even though ctx is over.
			_ = e.Resign(c.Ctx())
		} else {
			// Something else broke; the key stays, and a new Campaign on
			// this session takes its place in line back.
			e.leader = nil
		}
		return err
	}
	e.hdr = r.Header
	return nil
}

// Proclaim changes the leader's value without a new election.
func (e *Election) Proclaim(ctx context.Context, val string) error {
	if e.leader == nil {
		return ErrElectionNotLeader
	}
	r, err := e.s.Client().Txn(ctx).
		If(client.Compare(client.CreateRevision(e.key), "=", e.rev)).
		Then(client.OpPut(e.key, val, client.WithLease(e.leader.Lease()))).
		Commit()
	if err != nil {
		return err
	}
	if !r.Succeeded {
		// The key was deleted, or replaced by a later campaign.
		e.key = ""
		return ErrElectionNotLeader
	}
	e.hdr = r.Header
	return nil
}

// Resign gives up leading (or campaigning), letting the next candidate
// lead. Resigning without leading does nothing.
func (e *Election) Resign(ctx context.Context) error {
	if e.leader == nil {
		return nil
	}
	r, err := e.s.Client().Txn(ctx).
		If(client.Compare(client.CreateRevision(e.key), "=", e.rev)).
		Then(client.OpDelete(e.key)).
		Commit()
	if err == nil {
		e.hdr = r.Header
	}
	e.key, e.leader = "", nil
	return err
}

// Leader reads the leader's key and value: the response's only KV.
func (e *Election) Leader(ctx context.Context) (*client.GetResponse, error) {
	r, err := e.s.Client().Get(ctx, e.pfx, client.WithFirstCreate()...)
	if err != nil {
		return nil, err
	}
	if len(r.Kvs) == 0 {
		return nil, ErrElectionNoLeader
	}
	return r, nil
}

// Observe follows the leadership: each response holds the leader's key
// and value, first the current one (or the first to campaign, if nobody
// does yet), then every value it proclaims, then the next leader's when
// it goes. Leaders that come and go between two reads may be missed, but
// the latest one is always delivered. The channel closes when ctx ends
// or a read or watch fails.
func (e *Election) Observe(ctx context.Context) <-chan *client.GetResponse {
	out := make(chan *client.GetResponse)
	go e.observe(ctx, out)
	return out
}

func (e *Election) observe(ctx context.Context, out chan<- *client.GetResponse) {
	defer close(out)
	for {
		leader, err := e.awaitLeader(ctx)
		if err != nil {
			return
		}
		if !send(ctx, out, leader) {
			return
		}
		if !e.followLeader(ctx, out, leader.Kvs[0], leader.Header.Revision) {
			return
		}
	}
}

// awaitLeader reads the leader, waiting for a first candidate if there
// is none. Its header's revision is the one the leader was seen at. Like
// clientv3's, the answer holds the header and the leader alone, not the
// read's count of candidates.
func (e *Election) awaitLeader(ctx context.Context) (*client.GetResponse, error) {
	r, err := e.s.Client().Get(ctx, e.pfx, client.WithFirstCreate()...)
	if err != nil {
		return nil, err
	}
	if len(r.Kvs) > 0 {
		return &client.GetResponse{Header: r.Header, Kvs: r.Kvs[:1]}, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range e.s.Client().Watch(wctx, e.pfx, client.WithPrefix(), client.WithRev(r.Header.Revision)) {
		if wr.Err() != nil {
			return nil, wr.Err()
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.PUT {
				return leaderAt(wr.Header, ev.Kv), nil
			}
		}
	}
	return nil, errWatchLost
}

// followLeader delivers the leader's new values until its key is
// deleted; false when observing must stop.
func (e *Election) followLeader(ctx context.Context, out chan<- *client.GetResponse, kv *mvccpb.KeyValue, rev int64) bool {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range e.s.Client().Watch(wctx, string(kv.Key), client.WithRev(rev+1)) {
		if wr.Err() != nil {
			return false
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.DELETE {
				return true
			}
			if !send(ctx, out, leaderAt(wr.Header, ev.Kv)) {
				return false
			}
		}
	}
	return false
}

// leaderAt is a leader read as of the revision kv was written at, on a
// copy of the watch's header, which other watches may share.
func leaderAt(h *pb.ResponseHeader, kv *mvccpb.KeyValue) *client.GetResponse {
	hdr := &pb.ResponseHeader{ClusterId: h.GetClusterId(), MemberId: h.GetMemberId(), RaftTerm: h.GetRaftTerm(), Revision: kv.ModRevision}
	return &client.GetResponse{Header: hdr, Kvs: []*mvccpb.KeyValue{kv}}
}

func send(ctx context.Context, out chan<- *client.GetResponse, r *client.GetResponse) bool {
	select {
	case out <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

// Key is this candidate's key while it campaigns or leads, else "".
func (e *Election) Key() string { return e.key }

// Rev is the create revision of this candidate's key.
func (e *Election) Rev() int64 { return e.rev }

// Header is the response header of the last successful campaign,
// proclamation or resignation.
func (e *Election) Header() *pb.ResponseHeader { return e.hdr }
