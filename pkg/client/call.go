package client

import (
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kvd-io/kvd/pkg/version"
)

// safeMethods change nothing on the server, so repeating one after a
// failure cannot apply anything twice.
var safeMethods = map[string]bool{
	"/etcdserverpb.KV/Range":              true,
	"/etcdserverpb.Cluster/MemberList":    true,
	"/etcdserverpb.Maintenance/Status":    true,
	"/etcdserverpb.Maintenance/HashKV":    true,
	"/etcdserverpb.Maintenance/Hash":      true,
	"/etcdserverpb.Auth/AuthStatus":       true,
	"/etcdserverpb.Auth/UserGet":          true,
	"/etcdserverpb.Auth/UserList":         true,
	"/etcdserverpb.Auth/RoleGet":          true,
	"/etcdserverpb.Auth/RoleList":         true,
	"/etcdserverpb.Lease/LeaseTimeToLive": true,
	"/etcdserverpb.Lease/LeaseLeases":     true,
}

const authenticateMethod = "/etcdserverpb.Auth/Authenticate"

// Retry pacing for safe calls: quick at first, never slower than a second.
const (
	firstRetryDelay = 25 * time.Millisecond
	maxRetryDelay   = time.Second
)

// retryable says a failed safe call may succeed if repeated: the endpoint
// went away or the member has no leader for the moment.
func retryable(err error) bool { return status.Code(err) == codes.Unavailable }

// withAPIVersion tells the server which API level the client speaks, as
// etcd's client does.
func withAPIVersion(ctx context.Context) context.Context {
	md, ok := metadata.FromOutgoingContext(ctx)
	if !ok {
		return metadata.AppendToOutgoingContext(ctx, rpctypes.MetadataClientAPIVersionKey, version.APIVersion)
	}
	md = md.Copy()
	md.Set(rpctypes.MetadataClientAPIVersionKey, version.APIVersion)
	return metadata.NewOutgoingContext(ctx, md)
}

// unaryInterceptor renews a rejected auth token once, and repeats safe
// calls that failed with Unavailable until they succeed or the call's
// context ends. Writes are never repeated after an Unavailable: a write
// that reached a server may have been applied.
func (c *Client) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx = withAPIVersion(ctx)
	delay := firstRetryDelay
	refreshed := false
	for {
		err := invoker(ctx, method, req, reply, cc, opts...)
		switch {
		case err == nil:
			return nil
		case !refreshed && method != authenticateMethod && c.auth.shouldRefresh(err):
			refreshed = true
			if aerr := c.auth.refresh(ctx, c.conn); aerr != nil {
				return aerr
			}
			continue
		case !safeMethods[method] || !retryable(err):
			return err
		}
		c.log.Debug("retrying call", "method", method, "after", delay, "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// streamInterceptor adds the API version to streams; a stream's owner
// decides about retries, since only it knows what was already received.
func (c *Client) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(withAPIVersion(ctx), desc, cc, method, opts...)
}
