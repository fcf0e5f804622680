package api

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	gw "go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

// NewGateway returns the HTTP/JSON gateway: etcd's /v3/... paths, each
// turned into a call on gs, so that every call goes through the same
// interceptors (auth, leader, metrics) as a gRPC client's would. gs is
// reached over an in-memory listener rather than the member's own client
// URL, which spares the gateway a TLS client configuration and a port.
// Everything it starts ends when ctx is done.
func NewGateway(ctx context.Context, gs RPCServer) (http.Handler, error) {
	lis := newChanListener(pipeAddr{})
	conn, err := grpc.NewClient("passthrough:///kvd-gateway",
		grpc.WithContextDialer(lis.dialPipe),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
	)
	if err != nil {
		return nil, fmt.Errorf("gateway connection: %w", err)
	}
	mux := newGatewayMux()
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		gw.RegisterKVHandler,
		gw.RegisterWatchHandler,
		gw.RegisterLeaseHandler,
		gw.RegisterClusterHandler,
		gw.RegisterMaintenanceHandler,
		gw.RegisterAuthHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			conn.Close()
			return nil, fmt.Errorf("register gateway handler: %w", err)
		}
	}
	// gs.Serve returns once lis closes; the server's own shutdown stops
	// the calls in flight.
	go func() { _ = gs.Serve(lis) }()
	go func() {
		<-ctx.Done()
		conn.Close()
		lis.Close()
	}()
	return allowCORS(legacyPaths(mux)), nil
}

// newGatewayMux marshals as etcd's gateway does: fields under their proto
// names, zero values left out, int64s as strings, keys and values as
// base64; unknown request fields are ignored rather than refused.
func newGatewayMux() *runtime.ServeMux {
	return runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard,
		&runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}}))
}

// legacyPaths serves etcd's old /v3beta/ prefix as /v3/, as etcd still
// does for clients written against it.
func legacyPaths(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v3beta/"); ok {
			r.URL.Path = "/v3/" + rest
			r.URL.RawPath = ""
		}
		h.ServeHTTP(w, r)
	})
}

// allowCORS lets browser pages on any origin call the gateway, as etcd's
// default --cors '*' does: every answer says so, and a preflight OPTIONS
// request is answered at once.
func allowCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Add("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
		hd.Add("Access-Control-Allow-Origin", "*")
		hd.Add("Access-Control-Allow-Headers", "accept, content-type, authorization")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// handleGateway mounts the gateway, when there is one, on the client
// URLs' mux.
func handleGateway(mux *http.ServeMux, cfg Config) {
	if cfg.Gateway == nil {
		return
	}
	mux.Handle("/v3/", cfg.Gateway)
	mux.Handle("/v3beta/", cfg.Gateway)
}

// dialPipe hands the listener one end of an in-memory connection and
// returns the other.
func (l *chanListener) dialPipe(ctx context.Context, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
	case <-ctx.Done():
	}
	client.Close()
	server.Close()
	return nil, net.ErrClosed
}

// pipeAddr names the gateway's in-memory listener.
type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "kvd-gateway" }
