package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/pkg/version"
	"github.com/kvd-io/kvd/tests/framework"
)

// TestKvctlOnly covers what etcdctl cannot be compared on: KVCTL_*
// variables, the version line, and check perf (a minute long in
// etcdctl; kvctl's hidden --duration shortens it).
func TestKvctlOnly(t *testing.T) {
	kvctl := framework.BuildKvctl(t)
	m := framework.StartEtcd(t)
	run := func(inv framework.Invocation) framework.Result {
		t.Helper()
		inv.Bin = kvctl
		return framework.Run(t, inv)
	}
	if r := run(framework.Invocation{Endpoints: m.Endpoint, Args: []string{"put", "k", "v"}}); r.Code != 0 {
		t.Fatalf("put: %+v", r)
	}

	t.Run("KVCTL_ variables win over ETCDCTL_ ones", func(t *testing.T) {
		r := run(framework.Invocation{Args: []string{"get", "k"}, Env: []string{
			"ETCDCTL_ENDPOINTS=127.0.0.1:1", "KVCTL_ENDPOINTS=" + m.Endpoint, "ETCDCTL_WRITE_OUT=json", "KVCTL_WRITE_OUT=fields",
		}})
		if r.Code != 0 || !strings.Contains(r.Stdout, `"Key" : "k"`) {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("version", func(t *testing.T) {
		r := run(framework.Invocation{Args: []string{"version"}})
		if want := "kvctl version: " + version.Version + "\nAPI version: 3.7\n"; r.Stdout != want || r.Code != 0 {
			t.Fatalf("%+v, want stdout %q", r, want)
		}
	})

	t.Run("help points to options", func(t *testing.T) {
		r := run(framework.Invocation{Args: []string{"get", "--help"}})
		if r.Code != 0 || !strings.Contains(r.Stdout, `Use "kvctl options"`) || strings.Contains(r.Stdout, "--endpoints") {
			t.Fatalf("%+v", r)
		}
		r = run(framework.Invocation{Args: []string{"options"}})
		if r.Code != 0 || !strings.Contains(r.Stdout, "--endpoints strings") || !strings.Contains(r.Stdout, "--write-out string") {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("check perf", func(t *testing.T) {
		r := run(framework.Invocation{Endpoints: m.Endpoint, Timeout: 30 * time.Second,
			Args: []string{"check", "perf", "--duration", "2", "--auto-compact", "--auto-defrag", "--prefix", "/perf/"}})
		want := regexp.MustCompile(`^Compacting with revision \d+\nCompacted with revision \d+\n` +
			`Defragmenting "` + regexp.QuoteMeta(m.Endpoint) + `"\nDefragmented "` + regexp.QuoteMeta(m.Endpoint) + `"\n` +
			`(PASS: Throughput is|FAIL: Throughput too low:) \d+ writes/s\n` +
			`(PASS: Slowest request took|Slowest request took too long:) \d+\.\d{6}s\n` +
			`(PASS: Stddev is|Stddev too high:) \d+\.\d{6}s\n(PASS|FAIL)\n$`)
		if !want.MatchString(r.Stdout) || r.Stderr != "" {
			t.Fatalf("output does not have check perf's shape: %+v", r)
		}
		if passed := strings.HasSuffix(r.Stdout, "\nPASS\n"); passed != (r.Code == 0) {
			t.Fatalf("verdict and exit code disagree: %+v", r)
		}
		left := run(framework.Invocation{Endpoints: m.Endpoint, Args: []string{"get", "/perf/", "--prefix", "--count-only", "-w", "fields"}})
		if !strings.Contains(left.Stdout, `"Count" : 0`) {
			t.Fatalf("check perf left keys behind: %+v", left)
		}
	})
}

// TestAuthSameAsEtcdctl logs in against an etcd with auth enabled, set
// up with etcdctl, and compares the outcomes of both CLIs.
func TestAuthSameAsEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd with auth; skipped with -short")
	}
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	m := framework.StartEtcd(t)
	for _, args := range [][]string{
		{"user", "add", "root:secret"}, {"role", "add", "root"}, {"user", "grant-role", "root", "root"}, {"auth", "enable"},
		{"put", "k", "v", "--user", "root:secret"},
	} {
		if _, stderr, code := framework.RunCLI(t, etcdctl, m.Endpoint, args...); code != 0 {
			t.Fatalf("etcdctl %q: %s", args, stderr)
		}
	}
	steps := []framework.Step{
		step("get", "k", "--user", "root:secret"),
		step("get", "k", "--user", "root", "--password", "secret", "-w", "fields"),
		step("get", "k"),
		step("get", "k", "--user", "root:wrong"),
		step("get", "k", "--user", "nobody:x"),
		step("put", "k", "w", "--user", "root:secret", "--prev-kv"),
		step("endpoint", "health", "--user", "root:secret", "-w", "fields"),
		step("endpoint", "status", "--cluster", "--user", "root:secret", "-w", "json"),
	}
	want := framework.RunScript(t, etcdctl, m.Endpoint, steps)
	// kvctl runs the same steps on the same server: the only write puts
	// the same value back, so both see the same revisions.
	if _, _, code := framework.RunCLI(t, etcdctl, m.Endpoint, "put", "k", "v", "--user", "root:secret"); code != 0 {
		t.Fatal("reset k")
	}
	got := framework.RunScript(t, kvctl, m.Endpoint, steps)
	for i, st := range steps {
		g, w := got[i], want[i]
		if st.Args[0] == "endpoint" { // figures and timings move on between the runs
			g.Stdout, w.Stdout = framework.NormalizeStatus(g.Stdout), framework.NormalizeStatus(w.Stdout)
		}
		if st.Args[0] == "put" || st.Args[0] == "get" && strings.Contains(strings.Join(st.Args, " "), "fields") {
			g.Stdout, w.Stdout = revisions.ReplaceAllString(g.Stdout, "N"), revisions.ReplaceAllString(w.Stdout, "N")
		}
		if g != w {
			t.Errorf("%q: kvctl %+v\netcdctl %+v", st.Args, g, w)
		}
	}
	r := framework.Run(t, framework.Invocation{Bin: kvctl, Endpoints: m.Endpoint, Args: []string{"get", "k", "--user", "root"}, Stdin: "secret\n"})
	if r.Code != 0 || r.Stdout != "Password: \nk\nw\n" {
		t.Fatalf("password from stdin: %+v", r)
	}
}

var revisions = regexp.MustCompile(`(?m)(Revision" : |ModRevision" : |Version" : )\d+`)

// TestTLSSameAsEtcdctl compares both CLIs against an etcd, and a kvd,
// that serve clients over TLS and require client certificates.
func TestTLSSameAsEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd and a kvd with TLS; skipped with -short")
	}
	certs := framework.NewCerts(t)
	t.Run("etcd", func(t *testing.T) { testTLSSameAsEtcdctl(t, certs, framework.StartEtcdTLS(t, certs)) })
	t.Run("kvd", func(t *testing.T) { testTLSSameAsEtcdctl(t, certs, framework.StartKvdTLS(t, certs)) })
}

func testTLSSameAsEtcdctl(t *testing.T, certs *framework.Certs, m *framework.Member) {
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	creds := []string{"--cacert", certs.CA, "--cert", certs.ClientCert, "--key", certs.ClientKey}
	with := func(args ...string) framework.Step { return framework.Step{Args: append(args, creds...)} }
	https := func(args ...string) framework.Step {
		args = append([]string{"--endpoints", "https://" + framework.EndpointVar}, args...)
		return framework.Step{Args: append(args, creds...), NoEndpoints: true}
	}
	if r := framework.Run(t, framework.Invocation{Bin: etcdctl, Endpoints: m.Endpoint, Args: append([]string{"put", "k", "v"}, creds...)}); r.Code != 0 {
		t.Fatalf("put over TLS: %+v", r)
	}
	// Reads only, so both CLIs see the same revisions.
	steps := []framework.Step{
		with("get", "k", "-w", "json"),
		https("get", "k"),
		https("member", "list", "-w", "table"),
		{Args: append([]string{"endpoint", "status", "-w", "table"}, creds...), Normalize: framework.NormalizeStatus},
		{Args: append([]string{"endpoint", "health", "--cluster"}, creds...), Normalize: framework.Normalize},
		step("get", "k", "--insecure-skip-tls-verify", "--cert", certs.ClientCert, "--key", certs.ClientKey),
		step("get", "k", "--cacert", certs.CA, "--command-timeout", "200ms"),
		step("get", "k", "--insecure-transport=false", "--command-timeout", "200ms"),
		step("get", "k", "--command-timeout", "200ms"),
		step("get", "k", "--cert", certs.ClientCert),
		step("get", "k", "--key", certs.ClientKey, "--cacert", certs.CA),
		step("get", "k", "--cacert", "/nonexistent/ca.pem"),
		step("get", "k", "--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem"),
	}
	want := framework.RunScript(t, etcdctl, m.Endpoint, steps)
	got := framework.RunScript(t, kvctl, m.Endpoint, steps)
	for i, st := range steps {
		if got[i] != want[i] {
			t.Errorf("%q:\nkvctl   %+v\netcdctl %+v", st.Args, got[i], want[i])
		}
	}
}
