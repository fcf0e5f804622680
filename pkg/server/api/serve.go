package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/kvd-io/kvd/pkg/server/h2rpc"
	"github.com/kvd-io/kvd/pkg/version"
)

// Config describes the client-facing services of one member.
type Config struct {
	// GRPCGo serves with grpc-go's server instead of h2rpc's.
	GRPCGo      bool
	KV          KV
	Maintenance Maintenance
	Cluster     Cluster
	Leases      Leases
	Auth        Auth
	Header      Header
	// Identify, when set, says who a call comes from, from its token: it
	// returns the call's context carrying that, or the error to refuse
	// the call with (an unknown or expired token).
	Identify func(ctx context.Context) (context.Context, error)
	// Probe runs the reads behind /health, /livez and /readyz; Alarms,
	// when set, lists the cluster's active alarms for them.
	Probe  Probe
	Alarms Alarms
	// HealthSeen, when set, hears how health requests were answered.
	HealthSeen HealthObserver
	// Calls, when set, sees every gRPC call first (metrics).
	Calls CallObserver
	// Metrics, when set, serves /metrics.
	Metrics http.Handler
	// Gateway, when set, serves the HTTP/JSON gateway (see NewGateway).
	Gateway http.Handler
	// Discovery, when set, adds the discovery-URL service's paths.
	Discovery Mounter
	// MaxRequestBytes bounds a request; gRPC gets some room above it so
	// that an oversized request reaches the server's own check and gets
	// etcd's error instead of a transport one.
	MaxRequestBytes int
	MaxTxnOps       int
	// Watcher serves the Watch service; WatchProgressNotifyInterval is
	// how often idle watchers that asked for it hear the revision.
	Watcher                     Watcher
	WatchProgressNotifyInterval time.Duration
	// EnablePprof serves Go's runtime profiles under /debug/pprof/, as
	// etcd's --enable-pprof does.
	EnablePprof bool
	// HasLeader says whether the member knows a leader; with it, calls
	// that require one are refused without one, and such streams end
	// after a few ElectionTimeouts without one.
	HasLeader       func() bool
	ElectionTimeout time.Duration
	// Logger hears of failed health checks.
	Logger *slog.Logger
}

// Mounter adds the handlers of a service of its own to the client URLs'
// mux.
type Mounter interface {
	Mount(mux *http.ServeMux)
}

// grpcOverhead is the slack above MaxRequestBytes that gRPC accepts.
const grpcOverhead = 512 * 1024

// RPCServer serves the gRPC services: h2rpc's server, or grpc-go's.
type RPCServer interface {
	grpc.ServiceRegistrar
	Serve(net.Listener) error
	GracefulStop()
	Stop()
	GetServiceInfo() map[string]grpc.ServiceInfo
}

// NewGRPC builds the gRPC server with every service registered.
func NewGRPC(cfg Config) RPCServer {
	s := newRPCServer(cfg)
	pb.RegisterKVServer(s, &kvService{kv: cfg.KV, hdr: cfg.Header, maxTxnOps: cfg.MaxTxnOps, chunkBytes: min(cfg.MaxRequestBytes, 256<<10)})
	pb.RegisterMaintenanceServer(s, &maintenanceService{m: cfg.Maintenance, hdr: cfg.Header})
	pb.RegisterClusterServer(s, &clusterService{c: cfg.Cluster, hdr: cfg.Header})
	if cfg.Leases != nil {
		pb.RegisterLeaseServer(s, &leaseService{l: cfg.Leases, hdr: cfg.Header})
	}
	if cfg.Auth != nil {
		pb.RegisterAuthServer(s, &authService{a: cfg.Auth, hdr: cfg.Header})
	}
	if cfg.Watcher != nil {
		progress := cfg.WatchProgressNotifyInterval
		if progress <= 0 {
			progress = 10 * time.Minute
		}
		// Like etcd, fragment past what a request may carry, overhead included.
		pb.RegisterWatchServer(s, &watchService{w: cfg.Watcher, hdr: cfg.Header, progress: progress, maxBytes: cfg.MaxRequestBytes + grpcOverhead})
	}
	if cfg.Calls != nil {
		cfg.Calls.RegisterGRPC(s)
	}
	return s
}

// newRPCServer returns the chosen server, with the interceptors of cfg and
// no services yet.
func newRPCServer(cfg Config) RPCServer {
	unary, stream := interceptors(cfg)
	if cfg.GRPCGo {
		return grpc.NewServer(
			grpc.ForceServerCodecV2(serverCodec),
			grpc.MaxRecvMsgSize(cfg.MaxRequestBytes+grpcOverhead),
			grpc.MaxSendMsgSize(math.MaxInt32),
			grpc.MaxConcurrentStreams(math.MaxUint32),
			grpc.Creds(connCreds{}), // TLS, if any, is the listener's (tls.go)
			// A fresh goroutine per call would grow its stack from 8 KiB
			// on every request.
			grpc.NumStreamWorkers(256),
			grpc.ChainUnaryInterceptor(unary...),
			grpc.ChainStreamInterceptor(stream...),
		)
	}
	return h2rpc.NewServer(h2rpc.Options{
		Codec:              serverCodec,
		MaxRecvMsgSize:     cfg.MaxRequestBytes + grpcOverhead,
		Workers:            256, // put handlers wait for their commit: many are busy at once
		UnaryInterceptors:  unary,
		StreamInterceptors: stream,
		AuthInfo:           authInfo,
		Logger:             cfg.Logger,
	})
}

// interceptors are what runs around every call, in order: metrics, the
// leader guard, then identification.
func interceptors(cfg Config) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	if cfg.Calls != nil {
		unary, stream = append(unary, cfg.Calls.UnaryInterceptor), append(stream, cfg.Calls.StreamInterceptor)
	}
	if cfg.HasLeader != nil {
		g := leaderGuard{hasLeader: cfg.HasLeader, interval: cfg.ElectionTimeout}
		if g.interval <= 0 {
			g.interval = time.Second
		}
		unary, stream = append(unary, g.unary), append(stream, g.stream)
	}
	if cfg.Identify != nil {
		id := identifier(cfg.Identify)
		unary, stream = append(unary, id.unary), append(stream, id.stream)
	}
	return unary, stream
}

// CallObserver sees every gRPC call before anything else does, and is
// shown the server once its services are registered.
type CallObserver interface {
	UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error)
	StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error
	RegisterGRPC(s interface {
		GetServiceInfo() map[string]grpc.ServiceInfo
	})
}

// NewMetricsHTTP returns the handler of --listen-metrics-urls: /metrics
// and the health endpoints, as etcd serves there.
func NewMetricsHTTP(cfg Config) http.Handler {
	mux := http.NewServeMux()
	handleProbes(mux, cfg)
	return mux
}

// handleProbes adds /metrics, /health, /livez and /readyz to mux.
func handleProbes(mux *http.ServeMux, cfg Config) {
	if cfg.Metrics != nil {
		mux.Handle("/metrics", cfg.Metrics)
	}
	if cfg.Probe != nil {
		h := newHealth(cfg)
		h.install(mux)
	}
}

// NewHTTP returns the handler for the plain HTTP endpoints.
func NewHTTP(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{
			"etcdserver":  version.EtcdVersion,
			"etcdcluster": version.ClusterVersion,
			"kvd":         version.Version,
		})
	})
	handleProbes(mux, cfg)
	handleGateway(mux, cfg)
	if cfg.Discovery != nil {
		cfg.Discovery.Mount(mux)
	}
	if cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve serves gRPC and HTTP on the same listener until ctx is done, then
// stops gracefully: in-flight calls finish, new ones are refused. gRPC
// clients speak HTTP/2 with prior knowledge, so the connection preface
// tells the two apart.
func Serve(ctx context.Context, lis net.Listener, gs RPCServer, h http.Handler, lg *slog.Logger) error {
	grpcLis := newChanListener(lis.Addr())
	httpLis := newChanListener(lis.Addr())
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(3)
	go func() { defer wg.Done(); errc <- gs.Serve(grpcLis) }()
	go func() { defer wg.Done(); errc <- ignoreClosed(hs.Serve(httpLis)) }()
	go func() { defer wg.Done(); errc <- split(lis, grpcLis, httpLis, lg) }()

	<-ctx.Done()
	lis.Close()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		gs.Stop()
		<-stopped
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(shutCtx)
	grpcLis.Close()
	httpLis.Close()
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
			return err
		}
	}
	return nil
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

var http2Preface = []byte("PRI * HTTP/2.0")

// split accepts connections and routes each by its first bytes. Sniffing
// happens off the accept loop so a silent client cannot hold up others.
func split(lis net.Listener, grpcLis, httpLis *chanListener, lg *slog.Logger) error {
	for {
		c, err := lis.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", lis.Addr(), err)
		}
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			head, err := br.Peek(len(http2Preface))
			_ = c.SetReadDeadline(time.Time{})
			if err != nil && len(head) == 0 {
				c.Close()
				return
			}
			pc := &peekedConn{Conn: c, r: br}
			if bytes.Equal(head, http2Preface) {
				grpcLis.deliver(pc)
			} else {
				httpLis.deliver(pc)
			}
		}()
	}
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// NetConn is the connection under the sniffing reader.
func (c *peekedConn) NetConn() net.Conn { return c.Conn }

// TakeReadAhead hands over the bytes sniffed or read ahead and not read
// yet, for a caller that reads NetConn from then on (h2rpc does).
func (c *peekedConn) TakeReadAhead() []byte {
	b, _ := c.r.Peek(c.r.Buffered())
	b = bytes.Clone(b)
	_, _ = c.r.Discard(len(b))
	return b
}

// chanListener is a net.Listener fed by split.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
