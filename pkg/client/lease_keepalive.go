package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/metadata"
)

const (
	// keepAliveBuffer is how many renewal answers wait for a slow reader
	// of a KeepAlive channel before newer ones are dropped.
	keepAliveBuffer = 16
	// keepAliveTick is how often renewals that are due are sent, and the
	// pause before a broken stream is opened again; a renewal not
	// answered is sent again a tick later.
	keepAliveTick = 500 * time.Millisecond
	// defaultFirstAnswer bounds the wait for a lease's first answer,
	// before its TTL is known, when Config.DialTimeout is not set.
	defaultFirstAnswer = 5 * time.Second
)

// keeper renews every lease given to KeepAlive over one LeaseKeepAlive
// stream. Two goroutines, started by the first KeepAlive and ended by
// the client's closing, do the work: run owns the stream (opens it,
// reads answers, opens another when it breaks) and tick is the only one
// that sends on it, every lease when it is due. Channels are only
// written and closed under mu, by whichever of them ends a lease.
type keeper struct {
	c      *Client
	remote pb.LeaseClient
	// firstAnswer is how long a new lease may wait for its first answer
	// before its channels close, as for clientv3: a dial timeout and a
	// second, or defaultFirstAnswer.
	firstAnswer time.Duration
	kick        chan struct{} // wakes tick for a new lease or a new stream
	wg          sync.WaitGroup

	mu      sync.Mutex
	leases  map[LeaseID]*keptLease
	stream  pb.Lease_LeaseKeepAliveClient // nil between streams
	started bool
	halted  bool // the client closed: every channel is closed
}

// keptLease is one lease being renewed for one or more KeepAlive calls.
type keptLease struct {
	subs     []*keepAliveSub
	next     time.Time // when to send the next renewal
	deadline time.Time // when to give up on the lease without an answer
}

// keepAliveSub is one KeepAlive call's channel.
type keepAliveSub struct {
	ctx  context.Context
	ch   chan *LeaseKeepAliveResponse
	stop func() bool // stops the callback that ends the sub with ctx
}

func newKeeper(c *Client, remote pb.LeaseClient) *keeper {
	first := defaultFirstAnswer
	if c.cfg.DialTimeout > 0 {
		first = c.cfg.DialTimeout + time.Second
	}
	return &keeper{
		c: c, remote: remote, firstAnswer: first,
		kick: make(chan struct{}, 1), leases: map[LeaseID]*keptLease{},
	}
}

// errKeepAliveHalted is what KeepAlive answers once the client is closed.
var errKeepAliveHalted = errors.New("client: lease keep-alive halted: client closed")

func (k *keeper) add(ctx context.Context, id LeaseID) (<-chan *LeaseKeepAliveResponse, error) {
	ch := make(chan *LeaseKeepAliveResponse, keepAliveBuffer)
	if err := ctx.Err(); err != nil {
		close(ch)
		return ch, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.halted || k.c.ctx.Err() != nil {
		close(ch)
		return ch, errKeepAliveHalted
	}
	kl := k.leases[id]
	if kl == nil {
		now := time.Now()
		kl = &keptLease{next: now, deadline: now.Add(k.firstAnswer)}
		k.leases[id] = kl
	}
	sub := &keepAliveSub{ctx: ctx, ch: ch}
	// The callback runs on its own goroutine, so registering it while
	// holding mu cannot deadlock; it only waits for mu.
	sub.stop = context.AfterFunc(ctx, func() { k.remove(id, sub) })
	kl.subs = append(kl.subs, sub)
	if !k.started {
		k.started = true
		k.wg.Add(2)
		go k.run()
		go k.tick()
	}
	k.wake()
	return ch, nil
}

// wake makes tick look for due renewals now rather than at its next tick.
func (k *keeper) wake() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// remove ends one KeepAlive call whose ctx ended; the lease is no longer
// renewed once no call wants it, but it is not revoked.
func (k *keeper) remove(id LeaseID, sub *keepAliveSub) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kl := k.leases[id]
	if kl == nil {
		return
	}
	for i, s := range kl.subs {
		if s == sub {
			kl.subs = append(kl.subs[:i], kl.subs[i+1:]...)
			s.end()
			break
		}
	}
	if len(kl.subs) == 0 {
		delete(k.leases, id)
	}
}

func (s *keepAliveSub) end() {
	s.stop()
	close(s.ch)
}

// endLease closes every channel of a lease; mu is held.
func (k *keeper) endLease(id LeaseID, kl *keptLease) {
	for _, s := range kl.subs {
		s.end()
	}
	delete(k.leases, id)
}

// halt closes every channel for good. Client.Close calls it, and run
// does when the client's context ends without Close.
func (k *keeper) halt() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.halted = true
	for id, kl := range k.leases {
		k.endLease(id, kl)
	}
}

// close halts the keeper and waits for its goroutines; the client's
// context must be done already.
func (k *keeper) close() {
	k.halt()
	k.wg.Wait()
}

// run keeps a stream open until the client closes. The stream carries
// require-leader, as clientv3's does: a member cut off from the leader
// fails it at once instead of holding renewals it cannot pass on.
func (k *keeper) run() {
	defer k.wg.Done()
	defer k.halt()
	ctx := WithRequireLeader(k.c.ctx)
	for {
		err := k.serve(ctx)
		if k.c.ctx.Err() != nil {
			return
		}
		if errors.Is(rpctypes.Error(err), rpctypes.ErrNoLeader) {
			k.endRequireLeader()
		}
		if k.c.auth.shouldRefresh(err) {
			if aerr := k.c.auth.refresh(k.c.ctx, k.c.conn); aerr != nil {
				k.c.log.Debug("lease keep-alive auth refresh failed", "error", aerr)
			}
		}
		k.c.log.Debug("lease keep-alive stream broken, reopening", "error", err, "after", keepAliveTick)
		if !sleepCtx(k.c.ctx, keepAliveTick) {
			return
		}
	}
}

// serve opens one stream and hands its answers out until it fails. The
// balancer opens it on a connected endpoint, so after the loss of one the
// renewals go on through another.
func (k *keeper) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := k.remote.LeaseKeepAlive(ctx)
	if err != nil {
		return err
	}
	k.setStream(stream)
	defer k.setStream(nil)
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		k.answer(resp)
	}
}

func (k *keeper) setStream(s pb.Lease_LeaseKeepAliveClient) {
	k.mu.Lock()
	k.stream = s
	k.mu.Unlock()
	if s != nil {
		k.wake() // renewals that failed with the last stream are due
	}
}

// answer passes a renewal's answer to the lease's channels, without
// waiting for slow readers, and schedules the next renewal a third of
// the TTL later. A TTL of zero means the lease is gone.
func (k *keeper) answer(resp *LeaseKeepAliveResponse) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kl := k.leases[resp.ID]
	if kl == nil {
		return
	}
	if resp.TTL <= 0 {
		k.endLease(resp.ID, kl)
		return
	}
	now := time.Now()
	ttl := time.Duration(resp.TTL) * time.Second
	kl.next = now.Add(ttl / 3)
	kl.deadline = now.Add(ttl)
	for _, s := range kl.subs {
		select {
		case s.ch <- resp:
		default:
			k.c.log.Debug("lease keep-alive answer dropped: channel full", "lease", fmt.Sprintf("%x", resp.ID))
		}
	}
}

// tick sends due renewals every keepAliveTick, or at once when woken.
func (k *keeper) tick() {
	defer k.wg.Done()
	t := time.NewTicker(keepAliveTick)
	defer t.Stop()
	for {
		select {
		case <-k.c.ctx.Done():
			return
		case <-t.C:
		case <-k.kick:
		}
		stream, due := k.due(time.Now())
		for _, id := range due {
			if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
				break // run sees the stream fail and opens another
			}
		}
	}
}

// due ends the leases that went unanswered past their deadline (they may
// well have expired on the server) and lists those to renew now on the
// current stream, if there is one.
func (k *keeper) due(now time.Time) (pb.Lease_LeaseKeepAliveClient, []LeaseID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var ids []LeaseID
	for id, kl := range k.leases {
		switch {
		case now.After(kl.deadline):
			k.endLease(id, kl)
		case k.stream != nil && !now.Before(kl.next):
			kl.next = now.Add(keepAliveTick) // unless answered sooner
			ids = append(ids, id)
		}
	}
	return k.stream, ids
}

// endRequireLeader closes the channels of KeepAlive calls made with
// WithRequireLeader when the stream failed for want of a leader: their
// callers asked to hear of it. The leases stay renewed for the others.
func (k *keeper) endRequireLeader() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, kl := range k.leases {
		kept := kl.subs[:0]
		for _, s := range kl.subs {
			if requiresLeader(s.ctx) {
				s.end()
			} else {
				kept = append(kept, s)
			}
		}
		kl.subs = kept
		if len(kept) == 0 {
			delete(k.leases, id)
		}
	}
}

func requiresLeader(ctx context.Context) bool {
	md, _ := metadata.FromOutgoingContext(ctx)
	v := md.Get(rpctypes.MetadataRequireLeaderKey)
	return len(v) > 0 && v[0] == rpctypes.MetadataHasLeader
}
