// Package client is a Go client for kvd and any server speaking the etcd
// v3 API, shaped like etcd's clientv3: a Client exposes KV, Cluster and
// Maintenance, requests are spread round-robin over every endpoint by
// gRPC's own balancer, and reads that fail because an endpoint went away
// are retried on another.
package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

// Config describes how to reach a cluster.
type Config struct {
	// Endpoints are host:port or http://host:port client URLs.
	Endpoints []string
	// DialTimeout bounds how long New waits for a first connection; zero
	// means New returns at once and calls wait for one instead.
	DialTimeout          time.Duration
	DialKeepAliveTime    time.Duration
	DialKeepAliveTimeout time.Duration
	MaxCallSendMsgSize   int
	MaxCallRecvMsgSize   int
}

// Client is a connection to a cluster. It is safe for concurrent use.
type Client struct {
	KV
	Cluster
	Maintenance

	cfg      Config
	conn     *grpc.ClientConn
	resolver *manual.Resolver
	eps      []string
}

// New connects to cfg.Endpoints.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("client: no endpoints given")
	}
	c := &Client{cfg: cfg, resolver: manual.NewBuilderWithScheme("kvd-endpoints")}
	if err := c.setResolverState(cfg.Endpoints); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("kvd-endpoints:///cluster", c.dialOptions()...)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c.conn = conn
	c.KV = &kv{remote: pb.NewKVClient(conn)}
	c.Cluster = &cluster{remote: pb.NewClusterClient(conn)}
	c.Maintenance = &maintenance{c: c}
	if cfg.DialTimeout > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.DialTimeout)
		defer cancel()
		if err := waitReady(ctx, conn); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) dialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithResolvers(c.resolver),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithChainUnaryInterceptor(retrySafeCalls),
	}
	var callOpts []grpc.CallOption
	if c.cfg.MaxCallSendMsgSize > 0 {
		callOpts = append(callOpts, grpc.MaxCallSendMsgSize(c.cfg.MaxCallSendMsgSize))
	}
	if c.cfg.MaxCallRecvMsgSize > 0 {
		callOpts = append(callOpts, grpc.MaxCallRecvMsgSize(c.cfg.MaxCallRecvMsgSize))
	}
	if len(callOpts) > 0 {
		opts = append(opts, grpc.WithDefaultCallOptions(callOpts...))
	}
	if c.cfg.DialKeepAliveTime > 0 {
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: c.cfg.DialKeepAliveTime, Timeout: c.cfg.DialKeepAliveTimeout, PermitWithoutStream: true,
		}))
	}
	return opts
}

// waitReady returns once the balancer has a connection, or ctx ends.
func waitReady(ctx context.Context, conn *grpc.ClientConn) error {
	conn.Connect()
	for {
		s := conn.GetState()
		if s.String() == "READY" {
			return nil
		}
		if !conn.WaitForStateChange(ctx, s) {
			return context.DeadlineExceeded
		}
	}
}

// Host strips a client URL to the host:port gRPC dials.
func Host(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
		return u.Host
	}
	return strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")
}

func (c *Client) setResolverState(eps []string) error {
	addrs := make([]resolver.Address, 0, len(eps))
	for _, ep := range eps {
		if strings.HasPrefix(ep, "https://") || strings.HasPrefix(ep, "unixs://") {
			return fmt.Errorf("client: endpoint %s needs TLS, which this client does not support yet", ep)
		}
		addrs = append(addrs, resolver.Address{Addr: Host(ep)})
	}
	c.eps = append([]string(nil), eps...)
	c.resolver.InitialState(resolver.State{Addresses: addrs})
	if c.conn != nil {
		c.resolver.UpdateState(resolver.State{Addresses: addrs})
	}
	return nil
}

// Endpoints lists the endpoints the client balances over.
func (c *Client) Endpoints() []string { return append([]string(nil), c.eps...) }

// SetEndpoints replaces the endpoints; connections move over gracefully.
func (c *Client) SetEndpoints(eps ...string) error { return c.setResolverState(eps) }

// Close closes every connection.
func (c *Client) Close() error { return c.conn.Close() }

// safeMethods are the calls that change nothing, so repeating them on
// another endpoint after a failure cannot apply anything twice.
var safeMethods = map[string]bool{
	"/etcdserverpb.KV/Range":              true,
	"/etcdserverpb.Cluster/MemberList":    true,
	"/etcdserverpb.Maintenance/Status":    true,
	"/etcdserverpb.Maintenance/HashKV":    true,
	"/etcdserverpb.Maintenance/AlarmList": true,
	"/etcdserverpb.Maintenance/Hash":      true,
	"/etcdserverpb.Auth/AuthStatus":       true,
	"/etcdserverpb.Lease/LeaseTimeToLive": true,
	"/etcdserverpb.Lease/LeaseLeases":     true,
}

// retrySafeCalls repeats a safe call that failed with Unavailable (the
// endpoint went away, or the member lost its leader) until it succeeds or
// the call's context ends. Writes are never retried here: a write that
// reached a server may have applied.
func retrySafeCalls(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	backoff := 25 * time.Millisecond
	for {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil || !safeMethods[method] || status.Code(err) != codes.Unavailable {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Err converts an error from a call into etcd's error value when it is
// one of etcd's, so callers can compare with rpctypes.Err* and print the
// server's message.
func Err(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		if s.Code() == codes.DeadlineExceeded {
			return context.DeadlineExceeded
		}
		if s.Code() == codes.Canceled {
			return context.Canceled
		}
		return rpctypes.Error(err)
	}
	return err
}
