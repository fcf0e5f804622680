package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestMetricsMoveWithTraffic scrapes a real kvd, which must answer
// Prometheus text, and checks that its series follow what clients do:
// puts (handled counts by code, latency histograms, WAL fsyncs, batch
// commits, keys) and watches (watchers, streams, messages sent). It scrapes
// the client URL and the --listen-metrics-urls one, which must agree.
func TestMetricsMoveWithTraffic(t *testing.T) {
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d", framework.PickPort(t))
	m := framework.StartKvd(t, "--metrics", "extensive", "--listen-metrics-urls", metricsURL)
	c := newClientv3(t, m.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	put := []string{"grpc_method", "Put", "grpc_service", "etcdserverpb.KV", "grpc_type", "unary"}
	watch := []string{"grpc_method", "Watch", "grpc_service", "etcdserverpb.Watch"}
	before := framework.ScrapeMetrics(t, m.ClientURL()+"/metrics")
	if v := before.Must(t, "kvd_grpc_server_handled_total", append(put, "grpc_code", "InvalidArgument")...); v != 0 {
		t.Fatalf("Put InvalidArgument is %v before any put", v)
	}
	if v := before.Must(t, "process_resident_memory_bytes"); v <= 0 {
		t.Fatalf("process_resident_memory_bytes = %v", v)
	}
	before.Must(t, "go_goroutines")

	wctx, wcancel := context.WithCancel(ctx)
	wa := c.Watch(wctx, "/m/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	wb := c.Watch(wctx, "/m/a", clientv3.WithCreatedNotify())
	for _, wc := range []clientv3.WatchChan{wa, wb} {
		if r := <-wc; !r.Created {
			t.Fatalf("watch not created: %+v", r)
		}
	}
	const puts = 20
	for i := range puts {
		if _, err := c.Put(ctx, fmt.Sprintf("/m/%c", 'a'+i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, "", "v"); err == nil {
		t.Fatal("put of an empty key succeeded")
	}
	for got := 0; got < puts; {
		r := <-wa
		got += len(r.Events)
	}

	var after framework.Scrape
	// The database commits its batch on a timer: wait for that one.
	waitFor(t, "a database commit after the puts", func() bool {
		after = framework.ScrapeMetrics(t, metricsURL+"/metrics")
		return after.Must(t, "kvd_disk_backend_commit_duration_seconds") > before.Must(t, "kvd_disk_backend_commit_duration_seconds")
	})
	moved := func(name string, want float64, labels ...string) {
		t.Helper()
		if d := after.Must(t, name, labels...) - before.Must(t, name, labels...); d != want {
			t.Errorf("%s%v moved by %v, want %v", name, labels, d, want)
		}
	}
	moved("kvd_grpc_server_started_total", puts+1, put...)
	moved("kvd_grpc_server_handled_total", puts, append(put, "grpc_code", "OK")...)
	moved("kvd_grpc_server_handled_total", 1, append(put, "grpc_code", "InvalidArgument")...)
	moved("kvd_grpc_server_handling_seconds", puts+1, put...)
	moved("kvd_grpc_server_started_total", 1, watch...)
	atLeast := func(name string, min float64, labels ...string) {
		t.Helper()
		if v := after.Must(t, name, labels...); v < min {
			t.Errorf("%s%v = %v, want at least %v", name, labels, v, min)
		}
	}
	atLeast("kvd_disk_wal_fsync_duration_seconds", before.Must(t, "kvd_disk_wal_fsync_duration_seconds")+1)
	atLeast("kvd_server_proposals_committed_total", before.Must(t, "kvd_server_proposals_committed_total")+puts)
	atLeast("kvd_server_proposals_applied_total", before.Must(t, "kvd_server_proposals_applied_total")+puts)
	atLeast("kvd_mvcc_keys_total", puts)
	atLeast("kvd_mvcc_db_total_size_in_bytes", 1)
	atLeast("kvd_mvcc_db_total_size_in_use_in_bytes", 1)
	// Two created notices plus the puts each watcher saw, at least.
	atLeast("kvd_grpc_server_msg_sent_total", 4, watch...)
	moved("kvd_grpc_server_msg_received_total", 2, watch...)
	for name, want := range map[string]float64{
		"kvd_mvcc_watcher_total": 2, "kvd_mvcc_watch_stream_total": 1,
		"kvd_server_has_leader": 1, "kvd_server_is_leader": 1, "kvd_server_leader_changes_seen_total": 1,
	} {
		if v := after.Must(t, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}

	lease, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	wcancel()
	waitFor(t, "watchers gone and the lease counted", func() bool {
		s := framework.ScrapeMetrics(t, m.ClientURL()+"/metrics")
		return s.Must(t, "kvd_mvcc_watcher_total") == 0 && s.Must(t, "kvd_mvcc_watch_stream_total") == 0 &&
			s.Must(t, "kvd_lease_active") == 1
	})
	if _, err := c.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if a := framework.Get(t, metricsURL+"/readyz"); a.Code != 200 {
		t.Fatalf("/readyz: %v", a)
	}
	final := framework.ScrapeMetrics(t, metricsURL+"/metrics")
	if v := final.Must(t, "kvd_lease_active"); v != 0 {
		t.Errorf("kvd_lease_active = %v after the revoke", v)
	}
	if v := final.Must(t, "kvd_server_healthchecks_total", "type", "readyz", "name", "linearizable_read", "status", "success"); v != 1 {
		t.Errorf("readyz linearizable_read successes = %v, want 1", v)
	}
	if v := final.Must(t, "kvd_server_health_success"); v < 1 { // the framework waited for /health
		t.Errorf("kvd_server_health_success = %v", v)
	}
	documented(t, final)
}

var kvdSeries = regexp.MustCompile(`kvd_[a-z_]+`)

// documented checks that docs/operations.md lists every kvd_ series a
// member exports, and that it and the Grafana dashboard name none that
// does not exist.
func documented(t *testing.T, s framework.Scrape) {
	t.Helper()
	for _, doc := range []string{"operations.md", "grafana-kvd.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", doc))
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, n := range kvdSeries.FindAllString(string(b), -1) {
			names[strings.TrimSuffix(n, "_bucket")] = true
		}
		for n := range names {
			if _, ok := s[n]; !ok {
				t.Errorf("docs/%s names %s, which kvd does not export", doc, n)
			}
		}
		if doc != "operations.md" {
			continue
		}
		for n := range s {
			if strings.HasPrefix(n, "kvd_") && !names[n] {
				t.Errorf("docs/%s does not list %s", doc, n)
			}
		}
	}
}

// waitFor polls cond until it holds, for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 10s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// probePaths are the health requests kvd must answer as etcd does.
var probePaths = []struct{ method, path string }{
	{"GET", "/health"},
	{"GET", "/health?serializable=true"},
	{"GET", "/health?exclude=NOSPACE"},
	{"GET", "/health?exclude=NOSPACE&exclude=CORRUPT&serializable=false"},
	{"GET", "/livez"},
	{"GET", "/livez?verbose"},
	{"GET", "/livez/serializable_read?verbose"},
	{"GET", "/readyz"},
	{"GET", "/readyz?verbose"},
	{"GET", "/readyz?verbose=1&exclude=linearizable_read"},
	{"GET", "/readyz?verbose&exclude=linearizable_read&exclude=non_learner&exclude=data_corruption&exclude=serializable_read"},
	{"GET", "/readyz?verbose&exclude=no_such_check"},
	{"GET", "/readyz?exclude="},
	{"GET", "/readyz/linearizable_read?verbose"},
	{"GET", "/readyz/linearizable_read?exclude=linearizable_read"},
	{"GET", "/readyz/non_learner"},
	{"GET", "/readyz/data_corruption?verbose"},
	{"GET", "/readyz/serializable_read?verbose"},
	{"POST", "/health"},
	{"POST", "/readyz"},
	{"HEAD", "/livez"},
}

// TestHealthEndpointsMatchEtcd asks a healthy kvd and a healthy etcd
// v3.7.3 the same health questions, on the client URL and on
// --listen-metrics-urls, and wants the same status, content type and body.
func TestHealthEndpointsMatchEtcd(t *testing.T) {
	answers := map[string][]string{}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			metricsURL := fmt.Sprintf("http://127.0.0.1:%d", framework.PickPort(t))
			m := srv.start(t, "--listen-metrics-urls", metricsURL)
			for _, base := range []string{m.ClientURL(), metricsURL} {
				for _, p := range probePaths {
					a := framework.Do(t, p.method, base+p.path)
					answers[srv.name] = append(answers[srv.name], fmt.Sprintf("%s %s: %d %q %q", p.method, p.path, a.Code, a.ContentType, sortedLines(a.Body)))
				}
			}
			if srv.name == "kvd" {
				// etcd's default --metrics basic has no handling-time
				// histograms; neither has kvd's.
				s := framework.ScrapeMetrics(t, metricsURL+"/metrics")
				s.Must(t, "kvd_grpc_server_started_total")
				if _, ok := s["kvd_grpc_server_handling_seconds"]; ok {
					t.Error("handling-time histograms with --metrics basic")
				}
			}
		})
	}
	if len(answers["etcd"]) == 0 {
		t.Skip("no etcd answers to compare with")
	}
	for i, want := range answers["etcd"] {
		if got := answers["kvd"][i]; got != want {
			t.Errorf("kvd answered\n  %s\netcd\n  %s", got, want)
		}
	}
}

// sortedLines puts a body's lines in order: etcd lists its checks in a
// random order.
func sortedLines(s string) string {
	lines := strings.SplitAfter(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "")
}

// TestSlowApplyLogged: with --warning-apply-duration below any apply, a
// put is logged once as a slow apply, with its kind, in the console
// format, and counted.
func TestSlowApplyLogged(t *testing.T) {
	m := framework.StartKvd(t, "--warning-apply-duration", "1ns", "--log-format", "console")
	c := newClientv3(t, m.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "slow", "v"); err != nil {
		t.Fatal(err)
	}
	var puts []string
	// The log arrives through a pipe, maybe after the answer.
	waitFor(t, "slow put in the log", func() bool {
		puts = puts[:0]
		for _, line := range strings.Split(m.Log(), "\n") {
			if strings.Contains(line, `msg="apply request took too long"`) && strings.Contains(line, " kind=put ") {
				puts = append(puts, line)
			}
		}
		return len(puts) > 0
	})
	if len(puts) != 1 || !strings.HasPrefix(puts[0], "time=") || !strings.Contains(puts[0], "level=WARN") || !strings.Contains(puts[0], " took=") {
		t.Fatalf("slow put logged %d times, want once as a console line:\n%s", len(puts), m.Log())
	}
	if v := framework.ScrapeMetrics(t, m.ClientURL()+"/metrics").Must(t, "kvd_server_slow_apply_total"); v < 1 {
		t.Errorf("kvd_server_slow_apply_total = %v", v)
	}
}
