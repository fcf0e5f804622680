package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"

	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/compactor"
	"github.com/kvd-io/kvd/pkg/server/tlsinfo"
)

// Config is a member's configuration, one field per etcd flag of the same
// name.
type Config struct {
	Name    string
	DataDir string

	ListenClientURLs         []string
	AdvertiseClientURLs      []string
	ListenPeerURLs           []string
	InitialAdvertisePeerURLs []string

	InitialCluster      string
	InitialClusterState string
	InitialClusterToken string

	// DiscoverySRV is a domain whose SRV records list the peers of a new
	// cluster; DiscoverySRVName is the optional service name suffix.
	DiscoverySRV     string
	DiscoverySRVName string
	// DiscoveryEndpoints and DiscoveryToken bootstrap a new cluster
	// through v3 discovery on another cluster.
	DiscoveryEndpoints      []string
	DiscoveryToken          string
	DiscoveryDialTimeout    time.Duration
	DiscoveryRequestTimeout time.Duration
	// Discovery is a discovery URL (etcd v2's --discovery) that a new
	// member bootstraps from; DiscoveryProxy an HTTP proxy to reach it
	// through; DiscoveryFallback what to do when discovery fails, of
	// which kvd offers only etcd's "exit".
	Discovery         string
	DiscoveryProxy    string
	DiscoveryFallback string
	// EnableDiscoveryService serves discovery URLs (GET /new?size=N) on
	// the client URLs; each token lives DiscoveryTokenTTL.
	EnableDiscoveryService bool
	DiscoveryTokenTTL      time.Duration
	// DiscoveryDNSServer (kvd only, host:port) sends the SRV and host
	// look-ups of discovery to that DNS server instead of the system's.
	DiscoveryDNSServer string

	SnapshotCount uint64
	// SnapshotCatchUpEntries is how much log stays behind a snapshot, so
	// a follower that lags by less catches up without a snapshot.
	SnapshotCatchUpEntries uint64
	// StrictReconfigCheck refuses membership changes that would leave
	// fewer started members than a quorum.
	StrictReconfigCheck bool
	MaxLearners         int
	// WatchProgressNotifyInterval is how often idle watchers that asked
	// for progress notifications hear the current revision.
	WatchProgressNotifyInterval time.Duration
	// EnablePprof serves runtime profiles on the client URLs.
	EnablePprof bool
	// GRPCGo serves the client API with grpc-go's server rather than
	// h2rpc's lighter one.
	GRPCGo bool
	// DisableGateway turns off the HTTP/JSON gateway on the client URLs
	// (etcd's --enable-grpc-gateway=false).
	DisableGateway bool
	// LeaseCheckpointInterval is how often the leader records the
	// remaining TTL of long leases through raft, so that a leader change
	// or a restart of the whole cluster does not give them their whole
	// TTL back. Zero turns checkpoints off.
	LeaseCheckpointInterval time.Duration
	// BcryptCost is the cost of the password hashes the member makes;
	// AuthTokenTTL how long an unused simple token lives.
	BcryptCost   int
	AuthTokenTTL time.Duration
	// AuthToken is etcd's --auth-token: "simple", or
	// "jwt,sign-method=...,priv-key=...,pub-key=...,ttl=..." (see
	// auth.ParseTokenConfig). Empty means simple. Validate parses it,
	// key files included, into authToken.
	AuthToken string
	authToken auth.TokenConfig

	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	MaxRequestBytes   uint
	MaxTxnOps         uint

	// BackendBatchInterval and BackendBatchLimit bound how long and how
	// many applied writes wait before the database commits them.
	BackendBatchInterval time.Duration
	BackendBatchLimit    int

	// QuotaBackendBytes is the most the database may grow to before
	// writes are refused and NOSPACE is raised: 0 means etcd's default
	// of 2 GiB, a negative value no quota.
	QuotaBackendBytes int64
	// CorruptCheckTime is how often the leader compares the members'
	// hashes (0: never); InitialCorruptCheck compares this member's hash
	// with its peers' before it serves, and refuses to start when they
	// differ (etcd's InitialCorruptCheck feature gate).
	CorruptCheckTime    time.Duration
	InitialCorruptCheck bool
	// ListenMetricsURLs are plain http URLs serving /metrics and the
	// health endpoints apart from client traffic.
	ListenMetricsURLs []string
	// Metrics is "basic" or "extensive"; extensive adds the gRPC
	// handling-time histograms.
	Metrics string
	// WarningApplyDuration is how long an entry may take to apply before
	// it is logged as slow.
	WarningApplyDuration time.Duration
	// AutoCompactionMode ("periodic" or "revision") and
	// AutoCompactionRetention are etcd's flags of those names; a
	// retention of "0" turns auto-compaction off. Validate parses the
	// retention into autoCompaction. AutoCompactionCheckInterval, when
	// positive, replaces revision mode's five-minute check (tests only).
	AutoCompactionMode          string
	AutoCompactionRetention     string
	AutoCompactionCheckInterval time.Duration
	autoCompaction              time.Duration

	// ClientTLS secures https:// client (and metrics) URLs, PeerTLS the
	// https:// peer URLs, both ways. ClientAutoTLS and PeerAutoTLS make
	// a self-signed pair in the data dir when no certificate is given,
	// valid for SelfSignedCertValidity years. CipherSuites and the TLS
	// versions apply to both sides (see tls.go).
	ClientTLS              tlsinfo.Info
	PeerTLS                tlsinfo.Info
	ClientAutoTLS          bool
	PeerAutoTLS            bool
	SelfSignedCertValidity uint
	CipherSuites           []string
	TLSMinVersion          string
	TLSMaxVersion          string

	Logger *slog.Logger
}

// Defaults returns the configuration etcd starts with when given no flags.
func Defaults() Config {
	return Config{
		Name:                        "default",
		ListenClientURLs:            []string{"http://localhost:2379"},
		AdvertiseClientURLs:         []string{"http://localhost:2379"},
		ListenPeerURLs:              []string{"http://localhost:2380"},
		InitialAdvertisePeerURLs:    []string{"http://localhost:2380"},
		InitialClusterState:         "new",
		InitialClusterToken:         "etcd-cluster",
		DiscoveryDialTimeout:        2 * time.Second,
		DiscoveryRequestTimeout:     5 * time.Second,
		DiscoveryFallback:           "exit",
		DiscoveryTokenTTL:           24 * time.Hour,
		SnapshotCount:               10000,
		SnapshotCatchUpEntries:      5000,
		StrictReconfigCheck:         true,
		MaxLearners:                 1,
		WatchProgressNotifyInterval: 10 * time.Minute,
		LeaseCheckpointInterval:     5 * time.Minute,
		BcryptCost:                  10,
		AuthTokenTTL:                300 * time.Second,
		AuthToken:                   "simple",
		HeartbeatInterval:           100 * time.Millisecond,
		ElectionTimeout:             1000 * time.Millisecond,
		MaxRequestBytes:             1572864,
		MaxTxnOps:                   128,
		BackendBatchInterval:        100 * time.Millisecond,
		BackendBatchLimit:           10000,
		Metrics:                     "basic",
		WarningApplyDuration:        100 * time.Millisecond,
		AutoCompactionMode:          compactor.ModePeriodic,
		AutoCompactionRetention:     "0",
		SelfSignedCertValidity:      1,
		TLSMinVersion:               "TLS1.2",
	}
}

// Validate checks the configuration and fills what can be derived.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("--name must not be empty")
	}
	if c.DataDir == "" {
		c.DataDir = c.Name + ".kvd"
	}
	if err := c.validateDiscovery(); err != nil {
		return err
	}
	if c.InitialCluster == "" && !c.usesDiscovery() {
		c.InitialCluster = initialClusterOf(c.Name, c.InitialAdvertisePeerURLs)
	}
	for flag, urls := range map[string][]string{
		"--listen-client-urls":          c.ListenClientURLs,
		"--advertise-client-urls":       c.AdvertiseClientURLs,
		"--initial-advertise-peer-urls": c.InitialAdvertisePeerURLs,
	} {
		if len(urls) == 0 {
			return fmt.Errorf("%s must name at least one URL", flag)
		}
		for _, u := range urls {
			if err := checkURL(u); err != nil {
				return fmt.Errorf("%s: %w", flag, err)
			}
		}
	}
	switch c.InitialClusterState {
	case "new", "existing":
	default:
		return fmt.Errorf("--initial-cluster-state must be 'new' or 'existing', not %q", c.InitialClusterState)
	}
	if c.HeartbeatInterval <= 0 {
		return errors.New("--heartbeat-interval must be positive")
	}
	if c.ElectionTimeout < 5*c.HeartbeatInterval {
		return fmt.Errorf("--election-timeout (%v) must be at least 5 times --heartbeat-interval (%v)", c.ElectionTimeout, c.HeartbeatInterval)
	}
	if c.SnapshotCount == 0 {
		return errors.New("--snapshot-count must be positive")
	}
	if c.SnapshotCatchUpEntries == 0 {
		return errors.New("--snapshot-catchup-entries must be positive")
	}
	if c.MaxLearners < 0 {
		return errors.New("--max-learners must not be negative")
	}
	switch c.Metrics {
	case "":
		c.Metrics = "basic"
	case "basic", "extensive":
	default:
		return fmt.Errorf("--metrics must be 'basic' or 'extensive', not %q", c.Metrics)
	}
	if c.WarningApplyDuration <= 0 {
		// A Config made in code may leave it out; every apply would be
		// "slow" otherwise.
		c.WarningApplyDuration = Defaults().WarningApplyDuration
	}
	for _, u := range c.ListenMetricsURLs {
		if err := checkURL(u); err != nil {
			return fmt.Errorf("--listen-metrics-urls: %w", err)
		}
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if c.MaxRequestBytes == 0 || c.MaxTxnOps == 0 {
		return errors.New("--max-request-bytes and --max-txn-ops must be positive")
	}
	if err := c.validateAutoCompaction(); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AuthToken != "" {
		tc, err := auth.ParseTokenConfig(c.AuthToken)
		if err != nil {
			return err
		}
		if len(tc.Ignored) > 0 {
			c.Logger.Warn("ignoring unknown --auth-token options", "kind", tc.Kind(), "options", tc.Ignored)
		}
		if tc.VerifyOnly() {
			c.Logger.Warn("--auth-token jwt has pub-key and no priv-key: this member verifies tokens but logins to it fail")
		}
		c.authToken = tc
	}
	return nil
}

// validateAutoCompaction checks the mode first and then the retention,
// in etcd's order and with its messages.
func (c *Config) validateAutoCompaction() error {
	if c.AutoCompactionMode == "" && (c.AutoCompactionRetention == "" || c.AutoCompactionRetention == "0") {
		return nil // a Config made in code that leaves compaction off
	}
	if err := compactor.CheckMode(c.AutoCompactionMode); err != nil {
		return err
	}
	d, err := compactor.ParseRetention(c.AutoCompactionMode, c.AutoCompactionRetention)
	if err != nil {
		return err
	}
	c.autoCompaction = d
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("parse URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("URL %q must use http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q has no host", s)
	}
	return nil
}

func initialClusterOf(name string, peerURLs []string) string {
	s := ""
	for i, u := range peerURLs {
		if i > 0 {
			s += ","
		}
		s += name + "=" + u
	}
	return s
}

// memberDir holds everything a member persists, laid out as etcd does.
func (c *Config) memberDir() string { return filepath.Join(c.DataDir, "member") }

func (c *Config) dbPath() string { return filepath.Join(c.memberDir(), "snap", "db") }

// minLeaseTTL is the shortest lease TTL granted, in whole seconds: one
// and a half election timeouts, as etcd's, so a lease outlives a leader
// election.
func (c *Config) minLeaseTTL() int64 {
	d := time.Duration(3*c.electionTicks()/2) * c.HeartbeatInterval
	return int64((d + time.Second - 1) / time.Second)
}

// electionTicks converts the election timeout into heartbeat ticks.
func (c *Config) electionTicks() int {
	return int(c.ElectionTimeout / c.HeartbeatInterval)
}
