package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// tlsServers starts a kvd and, when its binary is there, an etcd v3.7.3,
// both serving clients over TLS with certs and extra flags, for the same
// test to hold them to the same answers.
func tlsServers(t *testing.T, certs *framework.Certs, extra ...string) []*framework.Member {
	t.Helper()
	ms := []*framework.Member{framework.StartKvdTLS(t, certs, extra...)}
	if _, err := os.Stat(framework.EtcdBin()); err == nil {
		ms = append(ms, framework.StartEtcdTLS(t, certs, extra...))
	} else {
		t.Logf("no reference etcd at %s: checking kvd alone", framework.EtcdBin())
	}
	return ms
}

// tlsClient connects to m with cfg and puts a key, the outcome of which
// it returns.
func tlsPut(ctx context.Context, t *testing.T, m *framework.Member, cfg *tls.Config, key string) error {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL()}, TLS: cfg, DialTimeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = c.Put(ctx, key, "v")
	return err
}

// TestTLSClientRefusals: over https, a client that does not trust the
// server's CA, or that shows no certificate when --client-cert-auth is
// on, or one from another CA, is refused; one with the CA and a client
// certificate gets through. etcd answers alike.
func TestTLSClientRefusals(t *testing.T) {
	certs := framework.NewCerts(t)
	stranger := framework.NewCerts(t)
	ctx := context.Background()
	for _, m := range tlsServers(t, certs) {
		t.Run(m.Name, func(t *testing.T) {
			cases := []struct {
				name string
				cfg  *tls.Config
				ok   bool
			}{
				{"CA and client certificate", certs.ClientTLS(t), true},
				{"no CA", &tls.Config{Certificates: certs.ClientTLS(t).Certificates, MinVersion: tls.VersionTLS12}, false},
				{"no client certificate", certs.TLSWith(t, "", ""), false},
				{"client certificate of another CA", certs.TLSWith(t, stranger.ClientCert, stranger.ClientKey), false},
			}
			for _, tc := range cases {
				err := tlsPut(ctx, t, m, tc.cfg, "k")
				if (err == nil) != tc.ok {
					t.Errorf("%s: put error %v, want success %v", tc.name, err, tc.ok)
				}
			}
			// Plain text to an https URL is no request either.
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint}, DialTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if _, err := c.Get(cctx, "k"); err == nil {
				t.Errorf("plain-text get over an https URL succeeded")
			}
		})
	}
}

// TestTLSEtcdctlAgainstKvd: the real etcdctl with --cacert --cert --key
// puts, gets, lists members and checks health on a kvd serving TLS,
// printing what it prints for an etcd serving TLS; kvctl prints the same.
func TestTLSEtcdctlAgainstKvd(t *testing.T) {
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	certs := framework.NewCerts(t)
	ms := tlsServers(t, certs)
	creds := certs.CLIFlags()
	steps := []framework.Step{
		{Args: append([]string{"put", "k", "v"}, creds...)},
		{Args: append([]string{"get", "k"}, creds...)},
		{Args: append([]string{"--endpoints", "https://" + framework.EndpointVar, "get", "k", "-w", "fields"}, creds...), NoEndpoints: true, Normalize: framework.NormalizeStatus},
		{Args: append([]string{"member", "list"}, creds...), Normalize: maskMember},
		{Args: append([]string{"endpoint", "health"}, creds...), Normalize: framework.Normalize},
		{Args: []string{"get", "k", "--cacert", certs.CA, "--command-timeout", "300ms"}},
		{Args: []string{"get", "k", "--command-timeout", "300ms"}},
	}
	// Each server is reached at its own endpoint: mask it to compare.
	results := map[string][]framework.Result{}
	for _, m := range ms {
		for _, bin := range []string{etcdctl, kvctl} {
			got := framework.RunScript(t, bin, m.Endpoint, steps)
			for i := range got {
				got[i].Stdout = strings.ReplaceAll(got[i].Stdout, m.Endpoint, "ENDPOINT")
				got[i].Stderr = strings.ReplaceAll(got[i].Stderr, m.Endpoint, "ENDPOINT")
			}
			results[m.Name+" "+filepath.Base(bin)] = got
		}
	}
	want := results["kvd etcdctl"]
	for i, st := range steps[:5] {
		if want[i].Code != 0 {
			t.Errorf("etcdctl %q against kvd failed: %+v", st.Args, want[i])
		}
	}
	for name, got := range results {
		for i, st := range steps {
			if got[i] != want[i] {
				t.Errorf("%q:\n%s: %+v\nkvd etcdctl: %+v", st.Args, name, got[i], want[i])
			}
		}
	}
}

var memberLineRe = regexp.MustCompile(`(?m)^[0-9a-f]+, started, (kvd|etcd),`)

// maskMember hides, in member list output, what differs between two
// single-member servers: the member's ID and name, and the URLs' ports.
func maskMember(s string) string {
	return memberLineRe.ReplaceAllString(framework.NormalizeStatus(s), "ID, started, NAME,")
}

// servedSerial is the serial number of the certificate m serves to a new
// connection.
func servedSerial(t *testing.T, m *framework.Member, cfg *tls.Config) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", m.Endpoint, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", m.Name, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestTLSCertificateReload: a server certificate renewed on disk is what
// the next connection sees, with no restart; connections made before go
// on working.
func TestTLSCertificateReload(t *testing.T) {
	certs := framework.NewCerts(t)
	m := framework.StartKvdTLS(t, certs)
	cfg := certs.ClientTLS(t)
	before := servedSerial(t, m, cfg)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL()}, TLS: cfg, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "k", "1"); err != nil {
		t.Fatal(err)
	}
	renewed := certs.Renew(t)
	if renewed == before {
		t.Fatalf("renewal kept serial %d", before)
	}
	if got := servedSerial(t, m, cfg); got != renewed {
		t.Fatalf("after renewal a new connection sees serial %d, want %d (was %d)", got, renewed, before)
	}
	if _, err := c.Put(ctx, "k", "2"); err != nil {
		t.Fatalf("put on the connection made before the renewal: %v", err)
	}
	if err := tlsPut(ctx, t, m, cfg, "k"); err != nil {
		t.Fatalf("put on a new connection after the renewal: %v", err)
	}
}

// TestTLSCommonNameIsUser: with --client-cert-auth and auth enabled, a
// call without a token is made as the user its certificate names; kvd
// and etcd allow and refuse the same calls.
func TestTLSCommonNameIsUser(t *testing.T) {
	certs := framework.NewCerts(t)
	aliceCert, aliceKey := certs.Leaf(t, "alice", framework.ClientAuth)
	bobCert, bobKey := certs.Leaf(t, "bob", framework.ClientAuth)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	outcomes := map[string][]string{}
	for _, m := range tlsServers(t, certs) {
		root, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL()}, TLS: certs.ClientTLS(t), DialTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		for _, step := range []func() error{
			func() error { _, err := root.UserAdd(ctx, "root", "rootpw"); return err },
			func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
			func() error { _, err := root.UserAdd(ctx, "alice", "alicepw"); return err },
			func() error { _, err := root.RoleAdd(ctx, "a-writer"); return err },
			func() error {
				_, err := root.RoleGrantPermission(ctx, "a-writer", "a/", clientv3.GetPrefixRangeEnd("a/"), clientv3.PermissionType(clientv3.PermReadWrite))
				return err
			},
			func() error { _, err := root.UserGrantRole(ctx, "alice", "a-writer"); return err },
			func() error { _, err := root.Put(ctx, "b/1", "x"); return err },
			func() error { _, err := root.AuthEnable(ctx); return err },
		} {
			if err := step(); err != nil {
				t.Fatalf("%s: set up auth: %v", m.Name, err)
			}
		}
		var got []string
		record := func(what string, err error) {
			switch {
			case err == nil:
				got = append(got, what+": ok")
			case errors.Is(err, rpctypes.ErrPermissionDenied):
				got = append(got, what+": permission denied")
			default:
				got = append(got, what+": "+rpctypes.ErrorDesc(err))
			}
		}
		for _, who := range []struct{ name, cert, key string }{{"alice", aliceCert, aliceKey}, {"bob", bobCert, bobKey}} {
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL()}, TLS: certs.TLSWith(t, who.cert, who.key), DialTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Put(ctx, "a/1", who.name)
			record(who.name+" put a/1", err)
			_, err = c.Get(ctx, "a/1")
			record(who.name+" get a/1", err)
			_, err = c.Put(ctx, "b/1", who.name)
			record(who.name+" put b/1", err)
			_, err = c.Get(ctx, "b/1")
			record(who.name+" get b/1", err)
			c.Close()
		}
		outcomes[m.Name] = got
		t.Logf("%s: %q", m.Name, got)
	}
	want := []string{
		"alice put a/1: ok", "alice get a/1: ok", "alice put b/1: permission denied", "alice get b/1: permission denied",
		"bob put a/1: permission denied", "bob get a/1: permission denied", "bob put b/1: permission denied", "bob get b/1: permission denied",
	}
	for name, got := range outcomes {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
}

// TestTLSAutoTLS: --auto-tls serves an https client URL with a
// self-signed certificate kept in the data dir; a client that skips
// verification gets through, one that verifies does not.
func TestTLSAutoTLS(t *testing.T) {
	m := framework.NewMemberAt(t, framework.KvdBin(t), "kvd", framework.PickPort(t), framework.PickPort(t), "--auto-tls")
	m.TLS = &tls.Config{InsecureSkipVerify: true}
	m.Start()
	t.Cleanup(m.Stop)
	cert := filepath.Join(m.DataDir, "fixtures", "client", "cert.pem")
	if _, err := os.Stat(cert); err != nil {
		t.Fatalf("no self-signed certificate in the data dir: %v", err)
	}
	ctx := context.Background()
	if err := tlsPut(ctx, t, m, m.TLS, "k"); err != nil {
		t.Fatalf("put skipping verification: %v", err)
	}
	if err := tlsPut(ctx, t, m, &tls.Config{MinVersion: tls.VersionTLS12}, "k"); err == nil {
		t.Fatalf("a client verifying the self-signed certificate got through")
	}
}

// TestTLSMetricsURL: an https --listen-metrics-urls serves /metrics with
// the client certificate, and needs one.
func TestTLSMetricsURL(t *testing.T) {
	certs := framework.NewCerts(t)
	port := framework.PickPort(t)
	m := framework.StartKvdTLS(t, certs, "--listen-metrics-urls", fmt.Sprintf("https://127.0.0.1:%d", port))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(t)}}
	resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatalf("%s: scrape over TLS: %v", m.Name, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "kvd_") {
		t.Fatalf("scrape over TLS: %s %.200s", resp.Status, b)
	}
	// curl offers HTTP/2 and HTTP/1.1; the client URL answers it with
	// HTTP/1.1, for the HTTP handlers, as gRPC clients get HTTP/2.
	h := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(t), ForceAttemptHTTP2: true}}
	resp, err = h.Get(m.ClientURL() + "/health")
	if err != nil {
		t.Fatalf("/health over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health over TLS: %s (%s)", resp.Status, resp.Proto)
	}
}

// startFails runs kvd with flags, requires it to exit with an error and
// returns what it printed.
func startFails(t *testing.T, flags ...string) string {
	t.Helper()
	m := framework.NewMemberAt(t, framework.KvdBin(t), "kvd", framework.PickPort(t), framework.PickPort(t), flags...)
	m.Launch()
	t.Cleanup(m.Stop)
	code, ok := m.WaitExit(15 * time.Second)
	if !ok || code == 0 {
		t.Fatalf("kvd %q: exit code %d (exited %v), want an error; log:\n%s", flags, code, ok, m.Log())
	}
	return m.Log()
}

// TestTLSFlagErrors: TLS flags that cannot work stop kvd at start with
// etcd's message.
func TestTLSFlagErrors(t *testing.T) {
	certs := framework.NewCerts(t)
	https := func() string { return fmt.Sprintf("https://127.0.0.1:%d", framework.PickPort(t)) }
	cases := []struct {
		flags []string
		want  string
	}{
		{[]string{"--listen-metrics-urls", https()}, "client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url"},
		{[]string{"--tls-min-version", "TLS1.1"}, `unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)`},
		{[]string{"--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2"}, "min version (TLS1.3) is greater than max version (TLS1.2)"},
		{[]string{"--tls-min-version", "TLS1.3", "--cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}, "cipher suites cannot be configured when only TLS1.3 is enabled"},
		{[]string{"--cipher-suites", "TLS_NO_SUCH_SUITE"}, `unexpected TLS cipher suite "TLS_NO_SUCH_SUITE"`},
		{[]string{"--cert-file", certs.ServerCert}, "KeyFile and CertFile must both be present"},
	}
	for _, tc := range cases {
		if out := startFails(t, tc.flags...); !strings.Contains(out, tc.want) {
			t.Errorf("kvd %q: want %q in:\n%s", tc.flags, tc.want, out)
		}
	}
	// An https client URL without a certificate: the framework's flags
	// name the URL, so start it by hand.
	port := framework.PickPort(t)
	u := fmt.Sprintf("https://127.0.0.1:%d", port)
	m := framework.NewMemberAt(t, framework.KvdBin(t), "kvd", port, framework.PickPort(t))
	m.TLS = &tls.Config{}
	m.Launch()
	t.Cleanup(m.Stop)
	if code, ok := m.WaitExit(15 * time.Second); !ok || code == 0 {
		t.Fatalf("https client URL without a certificate started")
	}
	if want := "TLS key/cert (--cert-file, --key-file) must be provided for client url " + u + " with HTTPS scheme"; !strings.Contains(m.Log(), want) {
		t.Errorf("want %q in:\n%s", want, m.Log())
	}
}
