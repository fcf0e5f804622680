package metrics

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The gRPC series are those of go-grpc-prometheus, which etcd uses, under
// kvd_: calls started and handled by type, service, method and code,
// messages received and sent, and, with Extensive, handling time.
//
// A call must not pay for a label lookup: once the services are
// registered, Register resolves every method's series into a read-only
// table, and a call costs one map read plus the counters' own atomic adds.

// maxCode is the highest gRPC status code; codes above it are counted as
// Unknown.
const maxCode = codes.Unauthenticated

type grpcMetrics struct {
	extensive bool
	started   *prometheus.CounterVec
	handled   *prometheus.CounterVec
	received  *prometheus.CounterVec
	sent      *prometheus.CounterVec
	handling  *prometheus.HistogramVec

	methods atomic.Pointer[map[string]*methodSeries]
}

// methodSeries are one method's resolved series.
type methodSeries struct {
	started, received, sent prometheus.Counter
	handled                 [maxCode + 1]prometheus.Counter
	handling                prometheus.Observer // nil unless extensive
}

func newGRPCMetrics(reg prometheus.Registerer, extensive bool) *grpcMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	g := &grpcMetrics{
		extensive: extensive,
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kvd", Subsystem: "grpc", Name: "server_started_total",
			Help: "RPCs started on the server."}, labels),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kvd", Subsystem: "grpc", Name: "server_handled_total",
			Help: "RPCs completed on the server, by status code."}, append(labels, "grpc_code")),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kvd", Subsystem: "grpc", Name: "server_msg_received_total",
			Help: "Messages received from clients, stream messages each counted."}, labels),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kvd", Subsystem: "grpc", Name: "server_msg_sent_total",
			Help: "Messages sent to clients, stream messages each counted."}, labels),
	}
	reg.MustRegister(g.started, g.handled, g.received, g.sent)
	if extensive {
		g.handling = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "kvd", Subsystem: "grpc", Name: "server_handling_seconds",
			Help: "Time from a call's start to its answer (a stream's end) on the server.", Buckets: prometheus.DefBuckets}, labels)
		reg.MustRegister(g.handling)
	}
	empty := map[string]*methodSeries{}
	g.methods.Store(&empty)
	return g
}

// RegisterGRPC resolves the series of every method served by s; call it
// once the services are registered and before s serves. Like etcd's, the
// handled counters of every code start at zero, so rates exist before the
// first error.
func (m *Metrics) RegisterGRPC(s interface {
	GetServiceInfo() map[string]grpc.ServiceInfo
}) {
	if m == nil {
		return
	}
	g := m.grpc
	table := map[string]*methodSeries{}
	for service, info := range s.GetServiceInfo() {
		for _, mi := range info.Methods {
			typ := streamType(mi.IsClientStream, mi.IsServerStream)
			table["/"+service+"/"+mi.Name] = g.resolve(typ, service, mi.Name)
		}
	}
	g.methods.Store(&table)
}

func (g *grpcMetrics) resolve(typ, service, method string) *methodSeries {
	ms := &methodSeries{
		started:  g.started.WithLabelValues(typ, service, method),
		received: g.received.WithLabelValues(typ, service, method),
		sent:     g.sent.WithLabelValues(typ, service, method),
	}
	for c := codes.OK; c <= maxCode; c++ {
		ms.handled[c] = g.handled.WithLabelValues(typ, service, method, c.String())
	}
	if g.extensive {
		ms.handling = g.handling.WithLabelValues(typ, service, method)
	}
	return ms
}

func streamType(client, server bool) string {
	switch {
	case client && server:
		return "bidi_stream"
	case client:
		return "client_stream"
	case server:
		return "server_stream"
	}
	return "unary"
}

// series finds a method's series; a method Register did not see (none is
// expected) is resolved on the spot.
func (g *grpcMetrics) series(fullMethod, typ string) *methodSeries {
	if ms := (*g.methods.Load())[fullMethod]; ms != nil {
		return ms
	}
	service, method := "unknown", "unknown"
	if i := strings.LastIndexByte(fullMethod, '/'); i > 0 {
		service, method = fullMethod[1:i], fullMethod[i+1:]
	}
	return g.resolve(typ, service, method)
}

func (ms *methodSeries) done(err error, start time.Time) {
	c := status.Code(err)
	if c > maxCode {
		c = codes.Unknown
	}
	ms.handled[c].Inc()
	if ms.handling != nil {
		ms.handling.Observe(time.Since(start).Seconds())
	}
}

// UnaryInterceptor counts unary calls; put it first in the chain so that
// calls refused by later interceptors are counted with their codes.
func (m *Metrics) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if m == nil {
		return next(ctx, req)
	}
	ms := m.grpc.series(info.FullMethod, "unary")
	var start time.Time
	if ms.handling != nil {
		start = time.Now()
	}
	ms.started.Inc()
	ms.received.Inc()
	resp, err := next(ctx, req)
	if err == nil {
		ms.sent.Inc()
	}
	ms.done(err, start)
	return resp, err
}

// StreamInterceptor counts streams and the messages they carry.
func (m *Metrics) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if m == nil {
		return next(srv, ss)
	}
	ms := m.grpc.series(info.FullMethod, streamType(info.IsClientStream, info.IsServerStream))
	var start time.Time
	if ms.handling != nil {
		start = time.Now()
	}
	ms.started.Inc()
	err := next(srv, &countedStream{ServerStream: ss, ms: ms})
	ms.done(err, start)
	return err
}

// countedStream counts the messages of one stream.
type countedStream struct {
	grpc.ServerStream
	ms *methodSeries
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.ms.received.Inc()
	}
	return err
}

func (s *countedStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.ms.sent.Inc()
	}
	return err
}
