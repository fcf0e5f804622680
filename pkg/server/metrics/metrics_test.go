package metrics

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
)

// scrape serves m's handler once and parses what it wrote.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("scrape does not parse: %v", err)
	}
	return fams
}

// value finds the series of name with the given label values.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// TestSourcesAreReadAtScrape: a gauge reports what its source says when
// the scrape comes, not what it said when registered.
func TestSourcesAreReadAtScrape(t *testing.T) {
	keys, leader := 3, true
	m := New(Sources{Keys: func() int { return keys }, HasLeader: func() bool { return leader }}, Options{})
	fams := scrape(t, m)
	if v := value(t, fams, "kvd_mvcc_keys_total", nil); v != 3 {
		t.Errorf("keys = %v, want 3", v)
	}
	keys, leader = 7, false
	fams = scrape(t, m)
	if v := value(t, fams, "kvd_mvcc_keys_total", nil); v != 7 {
		t.Errorf("keys = %v, want 7", v)
	}
	if v := value(t, fams, "kvd_server_has_leader", nil); v != 0 {
		t.Errorf("has_leader = %v, want 0", v)
	}
	if _, ok := fams["kvd_lease_active"]; ok {
		t.Error("a series without a source is exported")
	}
	if _, ok := fams["process_resident_memory_bytes"]; !ok {
		t.Error("no process collector")
	}
}

// TestObservers: the recorded histograms and counters count.
func TestObservers(t *testing.T) {
	m := New(Sources{}, Options{})
	m.ObserveWALSync(2 * time.Millisecond)
	m.ObserveBackendCommit(time.Millisecond)
	m.ObserveDefrag(time.Second)
	m.ObserveBackendSnapshot(time.Second)
	m.ObserveSnapshotSave(time.Millisecond)
	m.ProposalFailed()
	m.ProposalBatch(1) // not a batch
	m.ProposalBatch(3)
	m.SlowApply()
	m.ReadIndexFailed()
	m.HealthAnswered(false)
	m.HealthChecked("readyz", "non_learner", true)
	fams := scrape(t, m)
	for _, name := range []string{
		"kvd_disk_wal_fsync_duration_seconds", "kvd_disk_backend_commit_duration_seconds",
		"kvd_disk_backend_defrag_duration_seconds", "kvd_disk_backend_snapshot_duration_seconds",
		"kvd_snap_save_total_duration_seconds", "kvd_server_proposals_failed_total",
		"kvd_server_slow_apply_total", "kvd_server_read_indexes_failed_total", "kvd_server_health_failures",
		"kvd_server_healthcheck", "kvd_server_healthchecks_total", "kvd_server_proposal_batches_total",
	} {
		if v := value(t, fams, name, nil); v != 1 {
			t.Errorf("%s = %v, want 1", name, v)
		}
	}
	if v := value(t, fams, "kvd_server_proposals_batched_total", nil); v != 3 {
		t.Errorf("kvd_server_proposals_batched_total = %v, want 3", v)
	}
	var none *Metrics // a member built without metrics records nothing
	none.ObserveWALSync(time.Millisecond)
	none.ProposalFailed()
}

// TestGRPCCalls runs real calls through the interceptors: each is counted
// by method and code, with its messages, and every code of every method
// is exported from the start.
func TestGRPCCalls(t *testing.T) {
	for _, extensive := range []bool{false, true} {
		m := New(Sources{}, Options{Extensive: extensive})
		s := grpc.NewServer(grpc.ChainUnaryInterceptor(m.UnaryInterceptor, refuseBadCaller), grpc.ChainStreamInterceptor(m.StreamInterceptor))
		healthpb.RegisterHealthServer(s, health.NewServer())
		m.RegisterGRPC(s)
		check := map[string]string{"grpc_service": "grpc.health.v1.Health", "grpc_method": "Check", "grpc_type": "unary"}
		fams := scrape(t, m)
		if v := value(t, fams, "kvd_grpc_server_handled_total", with(check, "grpc_code", "ResourceExhausted")); v != 0 {
			t.Fatalf("handled before any call = %v", v)
		}
		c := serve(t, s)
		ctx := context.Background()
		for range 3 {
			if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		bad := metadata.AppendToOutgoingContext(ctx, "bad", "1")
		if _, err := c.Check(bad, &healthpb.HealthCheckRequest{}); err == nil {
			t.Fatal("refused call succeeded")
		}
		wctx, cancel := context.WithCancel(ctx)
		w, err := c.Watch(wctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Recv(); err != nil {
			t.Fatal(err)
		}
		cancel()
		watch := map[string]string{"grpc_method": "Watch", "grpc_type": "server_stream"}
		// The server counts a message once its send returns, which may be
		// just after the client has it.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			fams = scrape(t, m)
			if value(t, fams, "kvd_grpc_server_msg_sent_total", watch) > 0 || time.Now().After(deadline) {
				break
			}
		}
		for _, tc := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"kvd_grpc_server_started_total", check, 4},
			{"kvd_grpc_server_handled_total", with(check, "grpc_code", "OK"), 3},
			{"kvd_grpc_server_handled_total", with(check, "grpc_code", "ResourceExhausted"), 1},
			{"kvd_grpc_server_msg_received_total", check, 4},
			{"kvd_grpc_server_msg_sent_total", check, 3},
			{"kvd_grpc_server_started_total", watch, 1},
			{"kvd_grpc_server_msg_sent_total", watch, 1},
		} {
			if v := value(t, fams, tc.name, tc.labels); v != tc.want {
				t.Errorf("extensive=%v: %s%v = %v, want %v", extensive, tc.name, tc.labels, v, tc.want)
			}
		}
		_, hasHistogram := fams["kvd_grpc_server_handling_seconds"]
		if hasHistogram != extensive {
			t.Errorf("extensive=%v: handling-time histograms exported: %v", extensive, hasHistogram)
		} else if extensive {
			if v := value(t, fams, "kvd_grpc_server_handling_seconds", check); v != 4 {
				t.Errorf("handling_seconds count = %v, want 4", v)
			}
		}
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range m {
		out[a] = b
	}
	return out
}

// refuseBadCaller stands for an interceptor after the metrics one that
// refuses a call.
func refuseBadCaller(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("bad")) > 0 {
		return nil, rpctypes.ErrGRPCNoSpace
	}
	return next(ctx, req)
}

// serve runs s over an in-memory connection until the test ends.
func serve(t *testing.T, s *grpc.Server) healthpb.HealthClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// BenchmarkUnaryInterceptor is what the metrics add to each call, beyond
// the handler, for each --metrics level.
func BenchmarkUnaryInterceptor(b *testing.B) {
	for _, extensive := range []bool{false, true} {
		b.Run(map[bool]string{false: "basic", true: "extensive"}[extensive], func(b *testing.B) {
			m := New(Sources{}, Options{Extensive: extensive})
			s := grpc.NewServer()
			healthpb.RegisterHealthServer(s, health.NewServer())
			m.RegisterGRPC(s)
			info := &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}
			next := func(context.Context, any) (any, error) { return nil, nil }
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, _ = m.UnaryInterceptor(ctx, nil, info, next)
				}
			})
		})
	}
}

// BenchmarkScrape is the cost of one scrape of a member's registry with
// every gRPC method of the etcd API exported, as a scraper polling every
// second makes the member pay once a second.
func BenchmarkScrape(b *testing.B) {
	for _, extensive := range []bool{false, true} {
		b.Run(map[bool]string{false: "basic", true: "extensive"}[extensive], func(b *testing.B) {
			m := New(Sources{Keys: func() int { return 1 }}, Options{Extensive: extensive})
			s := grpc.NewServer()
			etcdpb.RegisterKVServer(s, etcdpb.UnimplementedKVServer{})
			etcdpb.RegisterWatchServer(s, etcdpb.UnimplementedWatchServer{})
			etcdpb.RegisterLeaseServer(s, etcdpb.UnimplementedLeaseServer{})
			etcdpb.RegisterClusterServer(s, etcdpb.UnimplementedClusterServer{})
			etcdpb.RegisterMaintenanceServer(s, etcdpb.UnimplementedMaintenanceServer{})
			etcdpb.RegisterAuthServer(s, etcdpb.UnimplementedAuthServer{})
			m.RegisterGRPC(s)
			h := m.Handler()
			b.ReportAllocs()
			size := 0
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}
