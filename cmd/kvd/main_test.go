package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"

	"github.com/kvd-io/kvd/pkg/server"
)

// parseConfig runs the flag parsing of the kvd command on args.
func parseConfig(t *testing.T, args ...string) (server.Config, error) {
	t.Helper()
	v := viper.New()
	cmd := newCommand()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := bindConfig(v, cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	return configFrom(v)
}

// parse is parseConfig for flags that must parse.
func parse(t *testing.T, args ...string) server.Config {
	t.Helper()
	cfg, err := parseConfig(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDiscoveryFlags(t *testing.T) {
	cfg := parse(t, "--discovery-endpoints", "http://127.0.0.1:1,http://127.0.0.1:2", "--discovery-token", "tok",
		"--discovery-dial-timeout", "3s", "--discovery-request-timeout", "7s")
	if !slices.Equal(cfg.DiscoveryEndpoints, []string{"http://127.0.0.1:1", "http://127.0.0.1:2"}) || cfg.DiscoveryToken != "tok" ||
		cfg.DiscoveryDialTimeout != 3*time.Second || cfg.DiscoveryRequestTimeout != 7*time.Second {
		t.Fatalf("v3 discovery flags: %+v", cfg)
	}
	cfg = parse(t, "--discovery-srv", "example.test", "--discovery-srv-name", "prod", "--discovery-dns-server", "127.0.0.1:53")
	if cfg.DiscoverySRV != "example.test" || cfg.DiscoverySRVName != "prod" || cfg.DiscoveryDNSServer != "127.0.0.1:53" {
		t.Fatalf("SRV discovery flags: %+v", cfg)
	}
	d := parse(t)
	if d.DiscoveryDialTimeout != 2*time.Second || d.DiscoveryRequestTimeout != 5*time.Second {
		t.Fatalf("default timeouts: %v %v", d.DiscoveryDialTimeout, d.DiscoveryRequestTimeout)
	}
}

// TestDiscoveryURLEnv: the discovery URL comes from KVD_DISCOVERY or, as
// etcd's guides set it, ETCD_DISCOVERY; kvd's variable and then the flag
// win over etcd's.
func TestDiscoveryURLEnv(t *testing.T) {
	t.Setenv("ETCD_DISCOVERY", "http://127.0.0.1:1/discovery/etcd")
	if got := parse(t).Discovery; got != "http://127.0.0.1:1/discovery/etcd" {
		t.Fatalf("ETCD_DISCOVERY: %q", got)
	}
	t.Setenv("ETCD_DISCOVERY_PROXY", "127.0.0.1:3128")
	if got := parse(t).DiscoveryProxy; got != "127.0.0.1:3128" {
		t.Fatalf("ETCD_DISCOVERY_PROXY: %q", got)
	}
	t.Setenv("KVD_DISCOVERY", "http://127.0.0.1:1/discovery/kvd")
	if got := parse(t).Discovery; got != "http://127.0.0.1:1/discovery/kvd" {
		t.Fatalf("KVD_DISCOVERY: %q", got)
	}
	if got := parse(t, "--discovery", "http://127.0.0.1:1/discovery/flag").Discovery; got != "http://127.0.0.1:1/discovery/flag" {
		t.Fatalf("--discovery: %q", got)
	}
	cfg := parse(t, "--enable-discovery-service")
	if !cfg.EnableDiscoveryService || cfg.DiscoveryTokenTTL != 24*time.Hour {
		t.Fatalf("service flags: %v %v", cfg.EnableDiscoveryService, cfg.DiscoveryTokenTTL)
	}
}

func TestDiscoveryValidation(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		cluster string
	}{
		{name: "static default", cluster: "default=http://localhost:2380"},
		{name: "srv leaves the cluster to discovery", args: []string{"--discovery-srv", "example.test"}},
		{name: "v3 leaves the cluster to discovery", args: []string{"--discovery-endpoints", "127.0.0.1:1", "--discovery-token", "t"}},
		{name: "initial cluster with srv", args: []string{"--initial-cluster", "default=http://localhost:2380", "--discovery-srv", "example.test"}, wantErr: "multiple discovery or bootstrap flags"},
		{name: "initial cluster with endpoints", args: []string{"--initial-cluster", "default=http://localhost:2380", "--discovery-endpoints", "127.0.0.1:1", "--discovery-token", "t"}, wantErr: "multiple discovery or bootstrap flags"},
		{name: "srv with endpoints", args: []string{"--discovery-srv", "example.test", "--discovery-endpoints", "127.0.0.1:1", "--discovery-token", "t"}, wantErr: "multiple discovery or bootstrap flags"},
		{name: "endpoints without token", args: []string{"--discovery-endpoints", "127.0.0.1:1"}, wantErr: "--discovery-token must be set"},
		{name: "token without endpoints", args: []string{"--discovery-token", "t"}, wantErr: "needs --discovery-endpoints"},
		{name: "srv name without srv", args: []string{"--discovery-srv-name", "x"}, wantErr: "needs --discovery-srv"},
		{name: "url leaves the cluster to discovery", args: []string{"--discovery", "http://127.0.0.1:1/discovery/tok"}},
		{name: "initial cluster with url", args: []string{"--initial-cluster", "default=http://localhost:2380", "--discovery", "http://127.0.0.1:1/discovery/tok"}, wantErr: "multiple discovery or bootstrap flags"},
		{name: "url with srv", args: []string{"--discovery", "http://127.0.0.1:1/discovery/tok", "--discovery-srv", "example.test"}, wantErr: "multiple discovery or bootstrap flags"},
		{name: "url with endpoints", args: []string{"--discovery", "http://127.0.0.1:1/discovery/tok", "--discovery-endpoints", "127.0.0.1:1", "--discovery-token", "t"}, wantErr: "multiple discovery or bootstrap flags"},
		{name: "url without token", args: []string{"--discovery", "http://127.0.0.1:1/"}, wantErr: "names no token"},
		{name: "url not http", args: []string{"--discovery", "ftp://127.0.0.1:1/tok"}, wantErr: "want http(s)://host/token"},
		{name: "proxy without url", args: []string{"--discovery-proxy", "127.0.0.1:3128"}, wantErr: "--discovery-proxy needs --discovery"},
		{name: "fallback proxy", args: []string{"--discovery", "http://127.0.0.1:1/t", "--discovery-fallback", "proxy"}, wantErr: "kvd has no proxy mode"},
		{name: "service ttl too short", args: []string{"--enable-discovery-service", "--discovery-token-ttl", "10ms"}, wantErr: "--discovery-token-ttl", cluster: "default=http://localhost:2380"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, tt.args...)
			err := cfg.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.InitialCluster != tt.cluster {
				t.Fatalf("initial cluster = %q, want %q", cfg.InitialCluster, tt.cluster)
			}
		})
	}
}

// startupError is the error kvd would stop with at start-up for args:
// from the flags, or from the configuration's validation, which reads
// --auth-token's key files.
func startupError(t *testing.T, args ...string) error {
	t.Helper()
	cfg, err := parseConfig(t, args...)
	if err != nil {
		return err
	}
	return cfg.Validate()
}

// checkStartup reports err from starting with args unless it is what
// wantErr asks: none when empty, else one containing it.
func checkStartup(t *testing.T, args []string, err error, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Errorf("%q: %v", args, err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Errorf("%q: error %v, want one containing %q", args, err, wantErr)
	}
}

func TestAuthTokenFlag(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	priv := filepath.Join(dir, "jwt.key")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pub")
	if d := parse(t); d.AuthToken != "simple" {
		t.Fatalf("default --auth-token %q", d.AuthToken)
	}
	tests := []struct {
		args    []string
		wantErr string
	}{
		{args: []string{"--auth-token", "simple"}},
		{args: []string{"--auth-token", "jwt,sign-method=ES256,priv-key=" + priv}},
		{args: []string{"--auth-token", "jwt,sign-method=ES256,priv-key=" + priv + ",ttl=10m"}},
		// etcd starts with options it does not know, and warns.
		{args: []string{"--auth-token", "jwt,sign-method=ES256,priv-key=" + priv + ",colour=blue"}},
		{args: []string{"--auth-token", ""}, wantErr: "--auth-token is empty"},
		{args: []string{"--auth-token", "oauth"}, wantErr: `unknown kind of token "oauth"`},
		{args: []string{"--auth-token", "jwt,priv-key=" + priv}, wantErr: "--auth-token jwt: sign-method is required"},
		{args: []string{"--auth-token", "jwt,sign-method=XS256,priv-key=" + priv}, wantErr: "sign-method=XS256: want one of"},
		{args: []string{"--auth-token", "jwt,sign-method=ES256"}, wantErr: "needs priv-key (to sign and verify) or pub-key"},
		{args: []string{"--auth-token", "jwt,sign-method=ES256,pub-key=" + missing}, wantErr: "pub-key: open " + missing},
		{args: []string{"--auth-token", "jwt,sign-method=RS256,priv-key=" + priv}, wantErr: "priv-key=" + priv},
		{args: []string{"--auth-token", "jwt,sign-method=ES384,priv-key=" + priv}, wantErr: "needs a 384-bit curve"},
		{args: []string{"--auth-token", "jwt,sign-method=ES256,priv-key=" + priv + ",ttl=soon"}, wantErr: "ttl=soon"},
		{args: []string{"--auth-token", "jwt,sign-method=ES256,priv-key"}, wantErr: `option "priv-key": want key=value`},
		{args: []string{"--auth-token", "jwt,ttl=1m,ttl=2m"}, wantErr: `option "ttl" is given twice`},
	}
	for _, tt := range tests {
		checkStartup(t, tt.args, startupError(t, tt.args...), tt.wantErr)
	}
}

// TestQuotaAndCorruptionFlags reads etcd's flags for the space quota and
// the corruption checks, and refuses feature gates etcd does not know or
// without a boolean, as etcd does.
func TestQuotaAndCorruptionFlags(t *testing.T) {
	cfg := parse(t, "--quota-backend-bytes", "1048576", "--corrupt-check-time", "5m",
		"--feature-gates", "InitialCorruptCheck=true,CompactHashCheck=false")
	if cfg.QuotaBackendBytes != 1<<20 || cfg.CorruptCheckTime != 5*time.Minute || !cfg.InitialCorruptCheck {
		t.Fatalf("flags: quota %d, check every %v, initial check %v", cfg.QuotaBackendBytes, cfg.CorruptCheckTime, cfg.InitialCorruptCheck)
	}
	if d := parse(t); d.QuotaBackendBytes != 0 || d.CorruptCheckTime != 0 || d.InitialCorruptCheck {
		t.Fatalf("defaults: %d %v %v", d.QuotaBackendBytes, d.CorruptCheckTime, d.InitialCorruptCheck)
	}
	if q := parse(t, "--quota-backend-bytes", "-1"); q.QuotaBackendBytes != -1 {
		t.Fatalf("negative quota: %d", q.QuotaBackendBytes)
	}
	for gates, want := range map[string]string{
		"Bogus=true":                "unrecognized feature gate: Bogus",
		"InitialCorruptCheck=maybe": "invalid value of InitialCorruptCheck=maybe",
		"InitialCorruptCheck":       "missing bool value for InitialCorruptCheck",
	} {
		if _, err := parseConfig(t, "--feature-gates", gates); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--feature-gates %s: %v, want %q", gates, err, want)
		}
	}
}

func TestAutoCompactionFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{args: nil},
		{args: []string{"--auto-compaction-retention", "1"}},
		{args: []string{"--auto-compaction-retention", "30m"}},
		{args: []string{"--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000"}},
		{args: []string{"--auto-compaction-mode", "hourly", "--auto-compaction-retention", "1"}, wantErr: `unknown auto-compaction-mode "hourly"`},
		{args: []string{"--auto-compaction-mode", ""}, wantErr: "undefined auto-compaction-mode"},
		{args: []string{"--auto-compaction-retention", "soon"}, wantErr: "error parsing CompactionRetention"},
		{args: []string{"--auto-compaction-mode", "revision", "--auto-compaction-retention", "-5"}, wantErr: "error parsing CompactionRetention"},
	}
	for _, tt := range tests {
		checkStartup(t, tt.args, startupError(t, append([]string{"--data-dir", t.TempDir()}, tt.args...)...), tt.wantErr)
	}
	cfg := parse(t, "--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000")
	if cfg.AutoCompactionMode != "revision" || cfg.AutoCompactionRetention != "1000" {
		t.Fatalf("parsed mode %q retention %q", cfg.AutoCompactionMode, cfg.AutoCompactionRetention)
	}
}
