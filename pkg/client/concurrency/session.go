// Package concurrency builds distributed locks and leader elections on
// the KV, Watch and Lease APIs, for kvctl lock and kvctl elect and for
// programs that coordinate through a cluster.
//
// Its keys and transactions are those of etcd's clientv3 concurrency
// package: a participant's key is the prefix, a slash and its lease ID in
// hex, and whoever created its key first under the prefix holds the lock
// or leads the election. A Mutex here and one from etcd's package on the
// same prefix therefore exclude each other, and an Election here and one
// there take turns in the same election.
package concurrency

import (
	"context"
	"time"

	"github.com/kvd-io/kvd/pkg/client"
)

const defaultSessionTTL = 60

// Session is a lease kept alive for as long as the session lasts. Keys a
// Mutex or an Election writes are attached to it, so they vanish if the
// process holding them dies and stops renewing.
type Session struct {
	client *client.Client
	id     client.LeaseID
	opts   sessionOptions

	ctx    context.Context
	cancel context.CancelFunc
	donec  chan struct{}
}

type sessionOptions struct {
	ttl   int
	lease client.LeaseID
	ctx   context.Context
}

// SessionOption changes a new session.
type SessionOption func(*sessionOptions)

// WithTTL sets the session lease's TTL in seconds; a TTL that is not
// positive keeps the default, 60.
func WithTTL(ttl int) SessionOption {
	return func(o *sessionOptions) {
		if ttl > 0 {
			o.ttl = ttl
		}
	}
}

// WithLease makes the session keep an existing lease alive instead of
// granting one: a restarted process can take back the locks and the
// leadership it held.
func WithLease(id client.LeaseID) SessionOption {
	return func(o *sessionOptions) { o.lease = id }
}

// WithContext bounds the session by ctx instead of the client's life:
// the grant in NewSession and the revoke in Close use it, and the lease
// is no longer renewed once it ends.
func WithContext(ctx context.Context) SessionOption {
	return func(o *sessionOptions) { o.ctx = ctx }
}

// NewSession grants a lease (unless WithLease names one) and keeps it
// alive until Close, Orphan, the session's context ending or the lease
// being lost.
func NewSession(c *client.Client, opts ...SessionOption) (*Session, error) {
	o := sessionOptions{ttl: defaultSessionTTL, ctx: c.Ctx()}
	for _, f := range opts {
		f(&o)
	}
	id := o.lease
	if id == client.NoLease {
		g, err := c.Grant(o.ctx, int64(o.ttl))
		if err != nil {
			return nil, err
		}
		id = g.ID
	}
	ctx, cancel := context.WithCancel(o.ctx)
	answers, err := c.KeepAlive(ctx, id)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &Session{client: c, id: id, opts: o, ctx: ctx, cancel: cancel, donec: make(chan struct{})}
	// The keep-alive channel closes when renewing ends for any reason,
	// which is when the session is over.
	go func() {
		defer close(s.donec)
		defer cancel()
		for range answers {
		}
	}()
	return s, nil
}

// Client is the client the session was made with.
func (s *Session) Client() *client.Client { return s.client }

// Lease is the session's lease, to which its keys are attached.
func (s *Session) Lease() client.LeaseID { return s.id }

// Ctx ends when the session does.
func (s *Session) Ctx() context.Context { return s.ctx }

// Done is closed when the lease is no longer renewed: the session was
// closed or orphaned, its context ended, the client closed, or the lease
// expired or was revoked.
func (s *Session) Done() <-chan struct{} { return s.donec }

// Orphan stops renewing the lease without revoking it: it expires after
// its TTL unless another session takes it over (WithLease). Useful when
// the connection is in doubt, so a revoke could not be trusted anyway.
func (s *Session) Orphan() {
	s.cancel()
	<-s.donec
}

// Close stops renewing the lease and revokes it, which deletes the
// session's keys at once, releasing its locks and leaderships.
func (s *Session) Close() error {
	s.Orphan()
	// Past the TTL the lease has expired by itself; no point waiting more.
	ctx, cancel := context.WithTimeout(s.opts.ctx, time.Duration(s.opts.ttl)*time.Second)
	defer cancel()
	_, err := s.client.Revoke(ctx, s.id)
	return err
}
