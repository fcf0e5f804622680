package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// runKvbench runs kvbench with args in this process and returns what it
// printed on stdout and the status main would exit with. Tests using it
// must not run in parallel, as it swaps os.Stdout.
func runKvbench(t *testing.T, args ...string) (string, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out, r)
		close(copied)
	}()
	saved := os.Stdout
	os.Stdout = w
	root := newRoot(&options{})
	root.SetArgs(args)
	root.SetErr(io.Discard) // the error is logged below
	err = root.Execute()
	os.Stdout = saved
	_ = w.Close()
	<-copied
	_ = r.Close()
	if err != nil {
		t.Logf("kvbench %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), exitCode(err)
}

// result is one RESULT line.
type result struct {
	part          string
	rps, p50, p99 float64
	ok, failed    int
}

// parseResults returns the RESULT lines of out, failing the test on a line
// that lacks a field or has one that is not a number.
func parseResults(t *testing.T, out string) []result {
	t.Helper()
	var rs []result
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "RESULT ")
		if !ok {
			continue
		}
		fields := map[string]string{}
		for _, f := range strings.Fields(rest) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		num := func(k string) float64 {
			v, err := strconv.ParseFloat(fields[k], 64)
			if err != nil {
				t.Fatalf("RESULT line %q: field %s: %v", line, k, err)
			}
			return v
		}
		rs = append(rs, result{part: fields["part"], rps: num("rps"), p50: num("p50_ms"), p99: num("p99_ms"),
			ok: int(num("ok")), failed: int(num("failed"))})
	}
	return rs
}

// servers starts each server the lease tests run against, skipping etcd
// when its reference binary is missing.
var servers = []struct {
	name  string
	start func(testing.TB, ...string) *framework.Member
}{
	{"kvd", framework.StartKvd},
	{"etcd", framework.StartEtcd},
}

func TestLeaseKeepAliveAgainstServers(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			m := s.start(t)
			out, code := runKvbench(t, "--endpoints", m.Endpoint, "--conns", "3", "--clients", "4",
				"lease-keepalive", "--leases", "300", "--total", "2000", "--window", "50", "--target", "leader")
			if code != 0 {
				t.Fatalf("exit status %d; output:\n%s", code, out)
			}
			rs := parseResults(t, out)
			parts := make([]string, len(rs))
			for i, r := range rs {
				parts[i] = r.part
			}
			if want := []string{"grant", "keepalive", "revoke"}; !slices.Equal(parts, want) {
				t.Fatalf("RESULT parts %q, want %q; output:\n%s", parts, want, out)
			}
			for i, wantOK := range []int{300, 2000, 300} {
				r := rs[i]
				if r.ok != wantOK || r.failed != 0 || r.rps <= 0 || r.p50 <= 0 || r.p50 > r.p99 {
					t.Errorf("%s: %+v, want ok=%d failed=0, positive rps and 0 < p50 <= p99", r.part, r, wantOK)
				}
			}
			if n := leaseCount(t, m.Endpoint); n != 0 {
				t.Errorf("%d leases left after the run, want all revoked", n)
			}
		})
	}
}

func TestLeaseExpiryAgainstServers(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			m := s.start(t)
			start := time.Now()
			out, code := runKvbench(t, "--endpoints", m.Endpoint, "--conns", "2", "--clients", "4",
				"lease-expiry", "--leases", "100", "--ttl", "2", "--drain-timeout", "5s")
			if code != 0 {
				t.Fatalf("exit status %d; output:\n%s", code, out)
			}
			if took := time.Since(start); took < 2*time.Second {
				t.Errorf("run took %v, less than the TTL", took)
			}
			rs := parseResults(t, out)
			if len(rs) != 1 || rs[0].part != "" {
				t.Fatalf("RESULT lines %+v, want one untagged; output:\n%s", rs, out)
			}
			// Lateness may dip below 0 by a grant's round trip; servers look
			// for expired leases every 500ms and revoke 1,000 a second.
			if r := rs[0]; r.ok != 100 || r.failed != 0 || r.rps <= 0 || r.p50 < -100 || r.p50 > r.p99 || r.p99 > 3000 {
				t.Errorf("%+v, want ok=100 failed=0, positive rps and -100 <= p50 <= p99 <= 3000", r)
			}
			if !strings.Contains(out, "Deleted:\t100 (0 early), 0 missed") {
				t.Errorf("output lacks the deletion counts:\n%s", out)
			}
			if n := keyCount(t, m.Endpoint, "kvbench-lease/"); n != 0 {
				t.Errorf("%d keys left after the run, want all deleted by expiry", n)
			}
		})
	}
}

// TestLeaseKeepAliveTargets sends the stream to a follower of a 3-member
// kvd cluster, which forwards every renewal to the leader, and checks
// that --target picks members by role.
func TestLeaseKeepAliveTargets(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	eps := make([]string, len(ms))
	for i, m := range ms {
		eps[i] = m.Endpoint
	}
	ctx := context.Background()
	leader, err := streamEndpoint(ctx, eps, "leader")
	if err != nil {
		t.Fatal(err)
	}
	follower, err := streamEndpoint(ctx, eps, "follower")
	if err != nil {
		t.Fatal(err)
	}
	if leader == follower || !isLeader(t, leader) || isLeader(t, follower) {
		t.Fatalf("leader %s, follower %s: roles do not match their Status", leader, follower)
	}
	if ep, err := streamEndpoint(ctx, eps, "first"); err != nil || ep != eps[0] {
		t.Errorf("first = %s, %v; want %s", ep, err, eps[0])
	}
	if _, err := streamEndpoint(ctx, eps, "any"); err == nil {
		t.Error("--target any was accepted")
	}

	out, code := runKvbench(t, "--endpoints", strings.Join(eps, ","), "--conns", "3", "--clients", "3",
		"lease-keepalive", "--leases", "50", "--total", "500", "--target", "follower")
	if code != 0 {
		t.Fatalf("exit status %d; output:\n%s", code, out)
	}
	if !strings.Contains(out, "Stream:\t1 to "+follower+" (follower)") {
		t.Errorf("stream not on the follower %s:\n%s", follower, out)
	}
	if rs := parseResults(t, out); len(rs) != 3 || rs[1].ok != 500 || rs[1].failed != 0 {
		t.Errorf("results %+v, want 500 keep-alives answered, none failed", rs)
	}
	// Endpoints with no follower among them: an error, not some member.
	if ep, err := streamEndpoint(ctx, []string{leader}, "follower"); err == nil {
		t.Errorf("follower among the leader alone = %s", ep)
	}
}

// TestLeaseUnsupported checks both commands exit with status 3 against a
// gRPC server that serves no etcd service at all.
func TestLeaseUnsupported(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	for _, args := range [][]string{
		{"lease-keepalive", "--leases", "5", "--total", "5"},
		{"lease-expiry", "--leases", "5"},
	} {
		if _, code := runKvbench(t, append([]string{"--endpoints", l.Addr().String()}, args...)...); code != exitUnsupported {
			t.Errorf("%s: exit status %d, want %d", args[0], code, exitUnsupported)
		}
	}
}

func TestExpiryResult(t *testing.T) {
	s := time.Second
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	r := newExpiryRun(5)
	// Lease 0: answered 10ms after its send, deleted 300ms after due.
	// Lease 1: deleted 5ms before due but after send + TTL: lateness -5ms.
	// Lease 2: deleted before send + TTL: early.
	// Lease 3: never deleted: missed. Lease 4: no key.
	r.sent = []time.Duration{0, ms(100), ms(200), ms(300), 0}
	r.ttl = []time.Duration{2 * s, 2 * s, 2 * s, 2 * s, 0}
	r.due = []time.Duration{ms(2010), ms(2120), ms(2220), ms(2330), 0}
	r.deleted = []time.Duration{ms(2310), ms(2115), ms(2150), 0, 0}
	r.lastDelete = ms(2310)
	res := r.result()
	if want := []time.Duration{ms(300), ms(-5)}; !slices.Equal(res.lat, want) {
		t.Errorf("lateness %v, want %v", res.lat, want)
	}
	if res.early != 1 || res.missed != 1 {
		t.Errorf("early %d, missed %d; want 1 and 1", res.early, res.missed)
	}
	if res.window != ms(300) || res.rate() != 2/0.3 {
		t.Errorf("window %v, rate %v; want 300ms and %v", res.window, res.rate(), 2/0.3)
	}
	if (expiryResult{}).rate() != 0 {
		t.Error("an empty result has a rate")
	}
}

func TestExpiryKeyIndex(t *testing.T) {
	r := newExpiryRun(1000)
	for _, i := range []int{0, 7, 999} {
		if got := r.index(r.key(i)); got != i {
			t.Errorf("index(key(%d)) = %d", i, got)
		}
	}
	other := newExpiryRun(1000)
	for _, k := range [][]byte{other.key(1), r.prefix, append(bytes.Clone(r.prefix), "x"...), r.key(1000), r.key(-1)} {
		if got := r.index(k); got != -1 {
			t.Errorf("index(%q) = %d, want -1", k, got)
		}
	}
}

func dialTest(t *testing.T, ep string) *grpc.ClientConn {
	t.Helper()
	cc, err := dial(ep, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func leaseCount(t *testing.T, ep string) int {
	t.Helper()
	resp, err := pb.NewLeaseClient(dialTest(t, ep)).LeaseLeases(context.Background(), &pb.LeaseLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Leases)
}

func keyCount(t *testing.T, ep, prefix string) int64 {
	t.Helper()
	end := []byte(prefix)
	end[len(end)-1]++
	resp, err := pb.NewKVClient(dialTest(t, ep)).Range(context.Background(), &pb.RangeRequest{Key: []byte(prefix), RangeEnd: end, CountOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

func isLeader(t *testing.T, ep string) bool {
	t.Helper()
	resp, err := pb.NewMaintenanceClient(dialTest(t, ep)).Status(context.Background(), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Leader == resp.Header.MemberId
}

// put --lease-ttl attaches every key it writes to the one lease it grants.
func TestPutWithLeaseAttachesEveryKey(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			m := s.start(t)
			out, code := runKvbench(t, "--endpoints", m.Endpoint, "--clients", "4", "put",
				"--key-space-size", "50", "--sequential-keys", "--lease-ttl", "600", "--total", "200")
			if code != 0 {
				t.Fatalf("exit status %d; output:\n%s", code, out)
			}
			lc := pb.NewLeaseClient(dialTest(t, m.Endpoint))
			leases, err := lc.LeaseLeases(context.Background(), &pb.LeaseLeasesRequest{})
			if err != nil || len(leases.Leases) != 1 {
				t.Fatalf("leases after the run: %v, %v; want exactly one", leases, err)
			}
			ttl, err := lc.LeaseTimeToLive(context.Background(), &pb.LeaseTimeToLiveRequest{ID: leases.Leases[0].ID, Keys: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(ttl.Keys) != 50 || ttl.GrantedTTL != 600 {
				t.Fatalf("lease holds %d keys with granted TTL %d, want 50 keys and 600", len(ttl.Keys), ttl.GrantedTTL)
			}
		})
	}
}
