// Package h2rpc is the server side of gRPC over HTTP/2, written for the
// client API's load: many small calls, each on a connection of its own.
//
// grpc-go's server pays, per call, for a stream object with several
// channels and goroutine hand-offs, a control-buffer queue, and a writer
// goroutine woken to send the answer. Here the connection's reader parses
// frames straight into a call, a pooled worker runs the handler, and the
// worker writes headers, message and trailers with one system call,
// coalescing with whatever other calls finish at the same moment. The
// generated service descriptors, interceptors, metadata, peer and status
// types are grpc-go's, so services and clients do not see the difference.
package h2rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
)

// Options configures a Server.
type Options struct {
	// Codec encodes answers and decodes requests.
	Codec encoding.CodecV2
	// MaxRecvMsgSize bounds a request message; larger ones are refused
	// with ResourceExhausted, as grpc-go does.
	MaxRecvMsgSize int
	// Workers is how many long-lived goroutines run unary handlers; a
	// goroutine of its own per call would grow its stack afresh each time.
	Workers int
	// UnaryInterceptors and StreamInterceptors run in order around every
	// handler.
	UnaryInterceptors  []grpc.UnaryServerInterceptor
	StreamInterceptors []grpc.StreamServerInterceptor
	// AuthInfo says what a connection's security is, for peer.FromContext.
	AuthInfo func(net.Conn) credentials.AuthInfo
	Logger   *slog.Logger
}

type method struct {
	fullName string
	impl     any
	unary    grpc.MethodHandler
	stream   *grpc.StreamDesc
}

// Server serves registered gRPC services on the listeners given to Serve.
type Server struct {
	opts      Options
	methods   map[string]*method // by "/service/Method"
	services  map[string]grpc.ServiceInfo
	unaryInt  grpc.UnaryServerInterceptor
	streamInt grpc.StreamServerInterceptor
	work      chan *stream
	quit      chan struct{}

	mu        sync.Mutex
	lis       map[net.Listener]struct{}
	conns     map[*conn]struct{}
	connsDone *sync.Cond
	draining  bool
	stopped   bool
	workersUp bool
}

// ErrServerStopped is returned by Serve once the server has stopped.
var ErrServerStopped = grpc.ErrServerStopped

// NewServer returns a server with no services.
func NewServer(opts Options) *Server {
	if opts.Workers <= 0 {
		opts.Workers = 64
	}
	if opts.MaxRecvMsgSize <= 0 {
		opts.MaxRecvMsgSize = 4 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:      opts,
		methods:   map[string]*method{},
		services:  map[string]grpc.ServiceInfo{},
		unaryInt:  chainUnary(opts.UnaryInterceptors),
		streamInt: chainStream(opts.StreamInterceptors),
		work:      make(chan *stream),
		quit:      make(chan struct{}),
		lis:       map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
	}
	s.connsDone = sync.NewCond(&s.mu)
	return s
}

// RegisterService makes desc's methods callable, served by impl. It must
// come before Serve.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	info := grpc.ServiceInfo{Metadata: desc.Metadata}
	for i := range desc.Methods {
		md := &desc.Methods[i]
		name := "/" + desc.ServiceName + "/" + md.MethodName
		s.methods[name] = &method{fullName: name, impl: impl, unary: md.Handler}
		info.Methods = append(info.Methods, grpc.MethodInfo{Name: md.MethodName})
	}
	for i := range desc.Streams {
		sd := &desc.Streams[i]
		name := "/" + desc.ServiceName + "/" + sd.StreamName
		s.methods[name] = &method{fullName: name, impl: impl, stream: sd}
		info.Methods = append(info.Methods, grpc.MethodInfo{Name: sd.StreamName, IsClientStream: sd.ClientStreams, IsServerStream: sd.ServerStreams})
	}
	s.services[desc.ServiceName] = info
}

// GetServiceInfo lists the registered services and their methods.
func (s *Server) GetServiceInfo() map[string]grpc.ServiceInfo { return s.services }

// Serve accepts connections on lis until it fails or the server stops,
// and closes lis on return. It returns nil once the server stops.
func (s *Server) Serve(lis net.Listener) error {
	s.mu.Lock()
	if s.stopped || s.draining {
		s.mu.Unlock()
		lis.Close()
		return ErrServerStopped
	}
	s.lis[lis] = struct{}{}
	s.startWorkersLocked()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lis, lis)
		s.mu.Unlock()
		lis.Close()
	}()
	for {
		nc, err := lis.Accept()
		if err != nil {
			s.mu.Lock()
			done := s.stopped || s.draining
			s.mu.Unlock()
			if done {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", lis.Addr(), err)
		}
		c := newConn(s, nc)
		if !s.track(c) {
			nc.Close()
			continue
		}
		go c.serve() // owned by the server: Stop closes the connection
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.draining {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.connsDone.Broadcast()
	s.mu.Unlock()
}

// startWorkersLocked starts the handler workers once; they stop with the
// server.
func (s *Server) startWorkersLocked() {
	if s.workersUp {
		return
	}
	s.workersUp = true
	for range s.opts.Workers {
		go func() {
			for {
				select {
				case st := <-s.work:
					st.serveUnary()
				case <-s.quit:
					return
				}
			}
		}()
	}
}

// dispatch hands a unary call to an idle worker, or to a goroutine of its
// own when every worker is busy.
func (s *Server) dispatch(st *stream) {
	select {
	case s.work <- st:
	default:
		go st.serveUnary()
	}
}

// GracefulStop stops accepting connections and calls, lets the calls in
// flight finish, and returns when every connection has closed.
func (s *Server) GracefulStop() { s.shutdown(true) }

// Stop closes every listener and connection at once; calls in flight see
// their context cancelled.
func (s *Server) Stop() { s.shutdown(false) }

var errStopped = errors.New("server stopped")

// shutdown closes the listeners, drains or closes every connection, waits
// until all have closed, and stops the workers.
func (s *Server) shutdown(graceful bool) {
	s.mu.Lock()
	if graceful {
		s.draining = true
	} else {
		s.stopped = true
	}
	for l := range s.lis {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		if graceful {
			c.drain()
		} else {
			c.close(errStopped)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.conns) > 0 {
		s.connsDone.Wait()
	}
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
}

func chainUnary(ints []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	switch len(ints) {
	case 0:
		return nil
	case 1:
		return ints[0]
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return ints[0](ctx, req, info, unaryAfter(ints, 0, info, h))
	}
}

func unaryAfter(ints []grpc.UnaryServerInterceptor, i int, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) grpc.UnaryHandler {
	if i == len(ints)-1 {
		return h
	}
	return func(ctx context.Context, req any) (any, error) {
		return ints[i+1](ctx, req, info, unaryAfter(ints, i+1, info, h))
	}
}

func chainStream(ints []grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	switch len(ints) {
	case 0:
		return nil
	case 1:
		return ints[0]
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return ints[0](srv, ss, info, streamAfter(ints, 0, info, h))
	}
}

func streamAfter(ints []grpc.StreamServerInterceptor, i int, info *grpc.StreamServerInfo, h grpc.StreamHandler) grpc.StreamHandler {
	if i == len(ints)-1 {
		return h
	}
	return func(srv any, ss grpc.ServerStream) error {
		return ints[i+1](srv, ss, info, streamAfter(ints, i+1, info, h))
	}
}

// splitMethod splits "/service/Method" for grpc-go's error messages.
func splitMethod(path string) (service, name string, ok bool) {
	path = strings.TrimPrefix(path, "/")
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "", "", false
	}
	return path[:i], path[i+1:], true
}
