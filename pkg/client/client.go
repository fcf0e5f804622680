// Package client is a Go client for kvd and any server speaking the etcd
// v3 API, shaped like etcd's clientv3: a Client exposes KV, Cluster,
// Maintenance, Watcher, Lease and Auth, requests are spread round-robin
// over every endpoint by gRPC's own balancer, reads that fail because an
// endpoint went away are retried on another, and watches resume on
// another.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver/manual"
)

// Config describes how to reach a cluster.
type Config struct {
	// Endpoints are host:port, http://host:port or https://host:port
	// client URLs. All of them must agree on TLS.
	Endpoints []string
	// DialTimeout bounds each attempt to connect to an endpoint and the
	// first authentication. New never waits for a connection: calls wait
	// for one, bounded by their context, as etcd's client does.
	DialTimeout time.Duration
	// DialKeepAliveTime is how often an idle connection is pinged; zero
	// means never. DialKeepAliveTimeout is how long a ping may go
	// unanswered before the connection is closed.
	DialKeepAliveTime    time.Duration
	DialKeepAliveTimeout time.Duration
	// Username and Password log in when both are set; the token is sent
	// with every call and renewed when the server rejects it.
	Username, Password string
	// Token is a ready-made auth token (a JWT), used instead of logging in.
	Token string
	// TLS secures every connection. https:// endpoints without TLS use
	// the system's roots.
	TLS *tls.Config
	// MaxCallSendMsgSize and MaxCallRecvMsgSize limit one message each
	// way; zero keeps gRPC's defaults (etcd's client sends up to 2 MiB).
	MaxCallSendMsgSize int
	MaxCallRecvMsgSize int
	// AutoSyncInterval, when set, is how often the client replaces its
	// endpoints with the client URLs the cluster's member list gives, so
	// members added later are used and removed ones dropped.
	AutoSyncInterval time.Duration
	// Context is the parent of every call's lifetime: cancelling it is
	// like calling Close.
	Context context.Context
	// Logger receives the client's diagnostics; nil discards them.
	Logger *slog.Logger
}

// defaultMaxCallSendMsgSize is what etcd's client allows by default: the
// server's own default request limit plus room for the envelope.
const defaultMaxCallSendMsgSize = 2 * 1024 * 1024

// Client is a connection to a cluster. It is safe for concurrent use.
type Client struct {
	KV
	Cluster
	Maintenance
	Watcher
	Lease
	Auth

	cfg      Config
	ctx      context.Context
	cancel   context.CancelFunc
	log      *slog.Logger
	conn     *grpc.ClientConn
	resolver *manual.Resolver
	secure   bool
	auth     *tokenAuth
	lessor   *lessor

	closeOnce sync.Once
	closeErr  error

	mu  sync.RWMutex
	eps []string
}

// New prepares a client for cfg.Endpoints and, when credentials are
// given, logs in. It does not wait for a connection otherwise.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("client: at least one endpoint is required")
	}
	if cfg.Token != "" && (cfg.Username != "" || cfg.Password != "") {
		return nil, errors.New("client: username/password and token are mutually exclusive")
	}
	if cfg.MaxCallRecvMsgSize > 0 && cfg.MaxCallSendMsgSize > cfg.MaxCallRecvMsgSize {
		return nil, fmt.Errorf("gRPC message recv limit (%d bytes) must be greater than send limit (%d bytes)",
			cfg.MaxCallRecvMsgSize, cfg.MaxCallSendMsgSize)
	}
	parent := cfg.Context
	if parent == nil {
		parent = context.Background()
	}
	c := &Client{cfg: cfg, log: cfg.Logger, resolver: manual.NewBuilderWithScheme(resolverScheme)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	addrs, secure, err := resolve(cfg.Endpoints)
	if err != nil {
		return nil, err
	}
	c.secure = secure || cfg.TLS != nil
	c.eps = append([]string(nil), cfg.Endpoints...)
	c.resolver.InitialState(addrs)
	c.auth = newTokenAuth(cfg)

	conn, err := grpc.NewClient(resolverScheme+":///cluster", c.dialOptions(grpc.WithResolvers(c.resolver))...)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c.conn = conn
	c.ctx, c.cancel = context.WithCancel(parent)
	context.AfterFunc(c.ctx, func() { _ = c.closeConn() })
	c.KV = &kv{remote: pb.NewKVClient(conn)}
	c.Cluster = &cluster{remote: pb.NewClusterClient(conn)}
	c.Maintenance = &maintenance{c: c}
	c.Watcher = newWatcher(c)
	c.lessor = newLessor(c)
	c.Lease = c.lessor
	c.Auth = &authAPI{remote: pb.NewAuthClient(conn)}

	if err := c.login(); err != nil {
		c.Close()
		return nil, err
	}
	if cfg.AutoSyncInterval > 0 {
		go c.autoSync(cfg.AutoSyncInterval)
	}
	return c, nil
}

// login fetches the first token, bounded by DialTimeout when set.
func (c *Client) login() error {
	if !c.auth.needsLogin() {
		return nil
	}
	ctx, cancel := c.ctx, context.CancelFunc(func() {})
	if c.cfg.DialTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.cfg.DialTimeout)
	}
	defer cancel()
	return c.auth.refresh(ctx, c.conn)
}

// dialOptions are shared by the balanced connection and the one-endpoint
// connections Maintenance opens.
func (c *Client) dialOptions(extra ...grpc.DialOption) []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(c.transportCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithChainUnaryInterceptor(c.unaryInterceptor),
		grpc.WithChainStreamInterceptor(c.streamInterceptor),
		grpc.WithPerRPCCredentials(c.auth),
		grpc.WithDefaultCallOptions(c.callOptions()...),
	}
	if c.cfg.DialTimeout > 0 {
		opts = append(opts, grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.DefaultConfig,
			MinConnectTimeout: c.cfg.DialTimeout,
		}))
	}
	if c.cfg.DialKeepAliveTime > 0 {
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                c.cfg.DialKeepAliveTime,
			Timeout:             c.cfg.DialKeepAliveTimeout,
			PermitWithoutStream: true,
		}))
	}
	return append(opts, extra...)
}

// callOptions make calls wait for a connection instead of failing while
// the balancer is still connecting, as etcd's client does.
func (c *Client) callOptions() []grpc.CallOption {
	send := defaultMaxCallSendMsgSize
	if c.cfg.MaxCallSendMsgSize > 0 {
		send = c.cfg.MaxCallSendMsgSize
	}
	opts := []grpc.CallOption{grpc.WaitForReady(true), grpc.MaxCallSendMsgSize(send)}
	if c.cfg.MaxCallRecvMsgSize > 0 {
		opts = append(opts, grpc.MaxCallRecvMsgSize(c.cfg.MaxCallRecvMsgSize))
	}
	return opts
}

// Endpoints lists the endpoints the client balances over.
func (c *Client) Endpoints() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]string(nil), c.eps...)
}

// SetEndpoints replaces the endpoints. Calls in flight finish where they
// are; new ones go to the new set.
func (c *Client) SetEndpoints(eps ...string) error {
	if len(eps) == 0 {
		return errors.New("client: at least one endpoint is required")
	}
	addrs, secure, err := resolve(eps)
	if err != nil {
		return err
	}
	if secure && !c.secure {
		return errors.New("client: cannot switch to TLS endpoints on a client created without TLS")
	}
	c.mu.Lock()
	c.eps = append([]string(nil), eps...)
	c.mu.Unlock()
	c.resolver.UpdateState(addrs)
	return nil
}

// Ctx is the client's lifetime: it ends when the client is closed.
func (c *Client) Ctx() context.Context { return c.ctx }

// Close ends every call and closes every connection. Every KeepAlive
// channel is closed by the time it returns.
func (c *Client) Close() error {
	c.cancel()
	c.lessor.keeper.close()
	return c.closeConn()
}

// closeConn runs once, from Close or when Config.Context ends.
func (c *Client) closeConn() error {
	c.closeOnce.Do(func() { c.closeErr = c.conn.Close() })
	return c.closeErr
}

// dialEndpoint opens a connection to endpoint alone, with the client's
// credentials and limits, for calls whose answer is about that member.
func (c *Client) dialEndpoint(endpoint string) (*grpc.ClientConn, error) {
	addrs, _, err := resolve([]string{endpoint})
	if err != nil {
		return nil, err
	}
	r := manual.NewBuilderWithScheme(resolverScheme)
	r.InitialState(addrs)
	conn, err := grpc.NewClient(resolverScheme+":///member", c.dialOptions(grpc.WithResolvers(r))...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", endpoint, err)
	}
	return conn, nil
}
