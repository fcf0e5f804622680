package client

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// LeaseID names a lease; 0 is no lease.
type LeaseID = int64

// NoLease is the zero lease: a key put with it has none.
const NoLease LeaseID = 0

// Lease responses are the wire types, as KV's are.
type (
	LeaseGrantResponse      = pb.LeaseGrantResponse
	LeaseRevokeResponse     = pb.LeaseRevokeResponse
	LeaseTimeToLiveResponse = pb.LeaseTimeToLiveResponse
	LeaseLeasesResponse     = pb.LeaseLeasesResponse
	LeaseKeepAliveResponse  = pb.LeaseKeepAliveResponse
)

// Lease grants, renews and revokes leases: keys attached to a lease are
// deleted when it expires or is revoked.
type Lease interface {
	// Grant creates a lease that lives ttl seconds unless kept alive.
	// WithLeaseID asks for a chosen ID instead of the server's.
	Grant(ctx context.Context, ttl int64, opts ...LeaseOption) (*LeaseGrantResponse, error)
	// Revoke ends the lease at once and deletes every key attached to it.
	Revoke(ctx context.Context, id LeaseID) (*LeaseRevokeResponse, error)
	// TimeToLive reports the lease's granted and remaining TTL, and with
	// WithAttachedKeys the keys attached to it. A lease that does not
	// exist answers with TTL -1, as etcd does.
	TimeToLive(ctx context.Context, id LeaseID, opts ...LeaseOption) (*LeaseTimeToLiveResponse, error)
	// Leases lists every lease.
	Leases(ctx context.Context) (*LeaseLeasesResponse, error)
	// KeepAlive renews the lease until ctx ends or the client closes,
	// sending a renewal every third of its TTL over one stream shared by
	// every kept-alive lease, which moves to another endpoint when its
	// own goes away. Each renewal's answer is offered on the channel
	// (dropped, not queued, if the reader is slow); the channel closes
	// when keeping the lease alive ends: ctx done, client closed, the
	// lease gone (expired or revoked), or no renewal answered within the
	// lease's TTL.
	KeepAlive(ctx context.Context, id LeaseID) (<-chan *LeaseKeepAliveResponse, error)
	// KeepAliveOnce renews the lease once. A lease that does not exist
	// fails with rpctypes.ErrLeaseNotFound.
	KeepAliveOnce(ctx context.Context, id LeaseID) (*LeaseKeepAliveResponse, error)
}

// LeaseOption changes a lease call.
type LeaseOption func(*leaseOp)

type leaseOp struct {
	id   LeaseID
	keys bool
}

// WithLeaseID makes Grant ask for this ID.
func WithLeaseID(id LeaseID) LeaseOption { return func(o *leaseOp) { o.id = id } }

// WithAttachedKeys makes TimeToLive list the lease's keys.
func WithAttachedKeys() LeaseOption { return func(o *leaseOp) { o.keys = true } }

// lessor implements Lease: unary calls directly on the Lease service, and
// KeepAlive through the keeper in lease_keepalive.go.
type lessor struct {
	c      *Client
	remote pb.LeaseClient
	keeper *keeper
}

func newLessor(c *Client) *lessor {
	remote := pb.NewLeaseClient(c.conn)
	return &lessor{c: c, remote: remote, keeper: newKeeper(c, remote)}
}

func leaseOptions(opts []LeaseOption) leaseOp {
	var o leaseOp
	for _, f := range opts {
		f(&o)
	}
	return o
}

func (l *lessor) Grant(ctx context.Context, ttl int64, opts ...LeaseOption) (*LeaseGrantResponse, error) {
	o := leaseOptions(opts)
	resp, err := l.remote.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: ttl, ID: o.id})
	return resp, toErr(ctx, err)
}

func (l *lessor) Revoke(ctx context.Context, id LeaseID) (*LeaseRevokeResponse, error) {
	resp, err := l.remote.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id})
	return resp, toErr(ctx, err)
}

func (l *lessor) TimeToLive(ctx context.Context, id LeaseID, opts ...LeaseOption) (*LeaseTimeToLiveResponse, error) {
	o := leaseOptions(opts)
	resp, err := l.remote.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id, Keys: o.keys})
	return resp, toErr(ctx, err)
}

func (l *lessor) Leases(ctx context.Context) (*LeaseLeasesResponse, error) {
	resp, err := l.remote.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
	return resp, toErr(ctx, err)
}

func (l *lessor) KeepAlive(ctx context.Context, id LeaseID) (<-chan *LeaseKeepAliveResponse, error) {
	return l.keeper.add(ctx, id)
}

// KeepAliveOnce repeats the renewal while the endpoint it reached goes
// away (renewing twice does no harm), until ctx ends.
func (l *lessor) KeepAliveOnce(ctx context.Context, id LeaseID) (*LeaseKeepAliveResponse, error) {
	delay := firstRetryDelay
	for {
		resp, err := l.keepAliveOnce(ctx, id)
		switch {
		case err == nil && resp.TTL <= 0:
			// The server answers a renewal of an unknown lease with a TTL
			// of zero rather than an error.
			return resp, rpctypes.ErrLeaseNotFound
		case err == nil:
			return resp, nil
		case !retryable(err) || !sleepCtx(ctx, delay):
			return nil, toErr(ctx, err)
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// keepAliveOnce sends one renewal on a stream of its own.
func (l *lessor) keepAliveOnce(ctx context.Context, id LeaseID) (*LeaseKeepAliveResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := l.remote.LeaseKeepAlive(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
		// Send reports io.EOF when the stream broke; Recv has the reason.
		if _, rerr := stream.Recv(); rerr != nil {
			return nil, rerr
		}
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	_ = stream.CloseSend()
	return resp, nil
}
