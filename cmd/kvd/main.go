// Command kvd runs one member of a kvd cluster. Its flags are named as
// etcd's, and each may also be set by a KVD_* environment variable
// (KVD_DATA_DIR for --data-dir) or by a YAML file given to --config-file
// whose keys are the flag names.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/kvd-io/kvd/pkg/server"
	"github.com/kvd-io/kvd/pkg/server/gcpace"
	"github.com/kvd-io/kvd/pkg/server/memtrim"
	"github.com/kvd-io/kvd/pkg/version"
)

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kvd:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	v := viper.New()
	cmd := &cobra.Command{
		Use:           "kvd",
		Short:         "kvd is a distributed, reliable key-value store speaking the etcd v3 API",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if v.GetBool("version") {
				printVersion()
				return nil
			}
			cfg, err := configFrom(v)
			if err != nil {
				return err
			}
			return run(cfg, gcFloor(v))
		},
	}
	addFlags(cmd.Flags())
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error { return bindConfig(v, cmd.Flags()) }
	return cmd
}

func addFlags(fs *pflag.FlagSet) {
	d := server.Defaults()
	fs.String("name", d.Name, "Human-readable name for this member.")
	fs.String("data-dir", "", "Path to the data directory (default \"${name}.kvd\").")
	fs.String("listen-client-urls", strings.Join(d.ListenClientURLs, ","), "List of URLs to listen on for client traffic.")
	fs.String("advertise-client-urls", strings.Join(d.AdvertiseClientURLs, ","), "List of this member's client URLs to advertise to the rest of the cluster.")
	fs.String("listen-peer-urls", strings.Join(d.ListenPeerURLs, ","), "List of URLs to listen on for peer traffic.")
	fs.String("initial-advertise-peer-urls", strings.Join(d.InitialAdvertisePeerURLs, ","), "List of this member's peer URLs to advertise to the rest of the cluster.")
	fs.String("initial-cluster", "", "Initial cluster configuration for bootstrapping, as name=peer-url pairs (default \"${name}=${initial-advertise-peer-urls}\").")
	fs.String("initial-cluster-state", d.InitialClusterState, "Initial cluster state ('new' or 'existing').")
	fs.String("initial-cluster-token", d.InitialClusterToken, "Initial cluster token for the cluster during bootstrap.")
	fs.String("discovery-srv", "", "DNS domain whose SRV records list the peers of a new cluster.")
	fs.String("discovery-srv-name", "", "Suffix of the DNS SRV service name looked up with --discovery-srv.")
	fs.String("discovery-endpoints", "", "Client URLs of a cluster serving v3 discovery for bootstrapping a new cluster.")
	fs.String("discovery-token", "", "Discovery token naming the new cluster on the v3 discovery service.")
	fs.Duration("discovery-dial-timeout", d.DiscoveryDialTimeout, "Dial timeout for v3 discovery.")
	fs.Duration("discovery-request-timeout", d.DiscoveryRequestTimeout, "Timeout of each request to the v3 discovery service.")
	fs.String("discovery", "", "Discovery URL used to bootstrap a new cluster (as handed out by a discovery service's /new?size=N).")
	fs.String("discovery-proxy", "", "HTTP proxy to reach the --discovery URL through.")
	fs.String("discovery-fallback", d.DiscoveryFallback, "What a member does when discovery fails: 'exit' (kvd has no proxy mode).")
	fs.Bool("enable-discovery-service", false, "kvd only: serve discovery URLs on the client URLs (GET /new?size=N), kept in this cluster's key space.")
	fs.Duration("discovery-token-ttl", d.DiscoveryTokenTTL, "kvd only: how long a token of the discovery service, and its registrations, live.")
	fs.String("discovery-dns-server", "", "kvd only: host:port of the DNS server that --discovery-srv look-ups go to, instead of the system's resolver.")
	fs.Uint64("snapshot-count", d.SnapshotCount, "Number of applied raft entries between two snapshots of the raft log.")
	fs.Uint64("snapshot-catchup-entries", d.SnapshotCatchUpEntries, "Number of raft entries kept after a snapshot so a slow follower can catch up without the whole database.")
	fs.Bool("strict-reconfig-check", d.StrictReconfigCheck, "Refuse membership changes that would leave the cluster without a quorum of started members.")
	fs.Int("max-learners", d.MaxLearners, "Most learner members the cluster may have at once.")
	fs.Uint("heartbeat-interval", uint(d.HeartbeatInterval/time.Millisecond), "Time (in milliseconds) of a heartbeat interval.")
	fs.Uint("election-timeout", uint(d.ElectionTimeout/time.Millisecond), "Time (in milliseconds) for an election to timeout.")
	fs.Uint("max-request-bytes", d.MaxRequestBytes, "Maximum client request size in bytes the server will accept.")
	fs.Uint("max-txn-ops", d.MaxTxnOps, "Maximum number of operations permitted in a transaction.")
	fs.Duration("backend-batch-interval", d.BackendBatchInterval, "Longest time applied writes wait before the database commits them.")
	fs.Int("backend-batch-limit", d.BackendBatchLimit, "Most applied writes that wait before the database commits them.")
	fs.String("auto-compaction-mode", d.AutoCompactionMode, "How to read --auto-compaction-retention: 'periodic' (a time window; a bare number is hours, e.g. '1' or '30m') or 'revision' (a number of revisions).")
	fs.String("auto-compaction-retention", d.AutoCompactionRetention, "How much key history auto-compaction keeps, as --auto-compaction-mode reads it; 0 turns auto-compaction off.")
	fs.Duration("auto-compaction-check-interval", 0, "kvd only, for tests: how often revision mode checks the revision (0: every 5 minutes, as etcd).")
	_ = fs.MarkHidden("auto-compaction-check-interval")
	fs.Duration("watch-progress-notify-interval", d.WatchProgressNotifyInterval, "How often watchers that asked for progress notifications and saw no event hear the current revision.")
	fs.Duration("lease-checkpoint-interval", d.LeaseCheckpointInterval, "How often the leader records the remaining TTL of long leases, so that a leader change or a whole-cluster restart does not give them their whole TTL back (kvd only; 0 turns it off).")
	fs.Uint("bcrypt-cost", uint(d.BcryptCost), "Cost of the bcrypt hashes of user passwords (4 to 31).")
	fs.String("auth-token", d.AuthToken, "Kind of auth token handed out on authentication: 'simple' (random tokens kept by every member) or 'jwt,sign-method=<RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512|EdDSA|HS256|HS384|HS512>,priv-key=<PEM file>,pub-key=<PEM file>,ttl=<duration>' (signed tokens any member verifies; pub-key alone verifies only; ttl defaults to 5m).")
	fs.Uint("auth-token-ttl", uint(d.AuthTokenTTL/time.Second), "Seconds an unused simple token stays valid.")
	fs.Int64("gc-heap-floor", 64<<20, "kvd only: the Go heap may grow to this many bytes before a collection, however little of it is live; fewer collections under load. 0 leaves Go's default pacing; so does setting GOGC.")
	fs.Int64("quota-backend-bytes", 0, "Most bytes the database may grow to; past it, writes are refused and the NOSPACE alarm is raised until an operator frees space and disarms it. 0 means the default of 2 GiB, a negative value no quota.")
	fs.Duration("corrupt-check-time", 0, "How often the leader compares the members' key-space hashes and raises the CORRUPT alarm for one that differs (0: never).")
	fs.String("feature-gates", "", "Comma-separated Name=bool pairs of etcd's feature gates; kvd acts on InitialCorruptCheck (compare this member's hash with its peers' before serving, and refuse to start when they differ) and accepts etcd's others.")
	fs.Bool("enable-pprof", false, "Serve Go runtime profiles under /debug/pprof/ on the client URLs.")
	fs.String("grpc-server", "kvd", "kvd only: what serves the gRPC client API: kvd (its own HTTP/2 server, lighter per call) or grpc-go.")
	fs.Bool("enable-grpc-gateway", true, "Serve the HTTP/JSON gateway (/v3/...) on the client URLs.")
	fs.String("log-level", "info", "Log level: debug, info, warn or error.")
	fs.String("log-format", "json", "Log format: json, or console (one key=value line per record).")
	fs.String("listen-metrics-urls", "", "List of plain http URLs to serve /metrics and the health endpoints on, apart from client traffic.")
	fs.String("metrics", d.Metrics, "Level of detail of the exported metrics: 'basic', or 'extensive' to add the gRPC handling-time histograms.")
	fs.Duration("warning-apply-duration", d.WarningApplyDuration, "Time an entry may take to apply before it is logged as slow.")
	addTLSFlags(fs)
	fs.String("config-file", "", "Path to a YAML file whose keys are flag names; flags given on the command line win.")
	fs.Bool("version", false, "Print the version and exit.")
}

// bindConfig makes every flag readable through v, with the precedence
// command line > KVD_* environment > config file > default.
func bindConfig(v *viper.Viper, fs *pflag.FlagSet) error {
	if err := v.BindPFlags(fs); err != nil {
		return fmt.Errorf("bind flags: %w", err)
	}
	v.SetEnvPrefix("KVD")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	// etcd's own variables for the discovery URL, which guides still set,
	// count as well, after kvd's.
	for key, env := range map[string]string{"discovery": "ETCD_DISCOVERY", "discovery-proxy": "ETCD_DISCOVERY_PROXY"} {
		if err := v.BindEnv(key, "KVD_"+strings.ToUpper(strings.ReplaceAll(key, "-", "_")), env); err != nil {
			return fmt.Errorf("bind %s: %w", env, err)
		}
	}
	if path := v.GetString("config-file"); path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("read config file %s: %w", path, err)
		}
	}
	return nil
}

func configFrom(v *viper.Viper) (server.Config, error) {
	level, err := parseLevel(v.GetString("log-level"))
	if err != nil {
		return server.Config{}, err
	}
	logger, err := newLogger(v.GetString("log-format"), level)
	if err != nil {
		return server.Config{}, err
	}
	cfg := server.Config{
		Name:                        v.GetString("name"),
		DataDir:                     v.GetString("data-dir"),
		ListenClientURLs:            urlList(v, "listen-client-urls"),
		AdvertiseClientURLs:         urlList(v, "advertise-client-urls"),
		ListenPeerURLs:              urlList(v, "listen-peer-urls"),
		InitialAdvertisePeerURLs:    urlList(v, "initial-advertise-peer-urls"),
		InitialCluster:              v.GetString("initial-cluster"),
		InitialClusterState:         v.GetString("initial-cluster-state"),
		InitialClusterToken:         v.GetString("initial-cluster-token"),
		DiscoverySRV:                v.GetString("discovery-srv"),
		DiscoverySRVName:            v.GetString("discovery-srv-name"),
		DiscoveryEndpoints:          urlList(v, "discovery-endpoints"),
		DiscoveryToken:              v.GetString("discovery-token"),
		DiscoveryDialTimeout:        v.GetDuration("discovery-dial-timeout"),
		DiscoveryRequestTimeout:     v.GetDuration("discovery-request-timeout"),
		DiscoveryDNSServer:          v.GetString("discovery-dns-server"),
		Discovery:                   v.GetString("discovery"),
		DiscoveryProxy:              v.GetString("discovery-proxy"),
		DiscoveryFallback:           v.GetString("discovery-fallback"),
		EnableDiscoveryService:      v.GetBool("enable-discovery-service"),
		DiscoveryTokenTTL:           v.GetDuration("discovery-token-ttl"),
		SnapshotCount:               v.GetUint64("snapshot-count"),
		SnapshotCatchUpEntries:      v.GetUint64("snapshot-catchup-entries"),
		StrictReconfigCheck:         v.GetBool("strict-reconfig-check"),
		MaxLearners:                 v.GetInt("max-learners"),
		EnablePprof:                 v.GetBool("enable-pprof"),
		DisableGateway:              !v.GetBool("enable-grpc-gateway"),
		GRPCGo:                      v.GetString("grpc-server") == "grpc-go",
		WatchProgressNotifyInterval: v.GetDuration("watch-progress-notify-interval"),
		LeaseCheckpointInterval:     v.GetDuration("lease-checkpoint-interval"),
		BcryptCost:                  v.GetInt("bcrypt-cost"),
		AuthTokenTTL:                time.Duration(v.GetUint("auth-token-ttl")) * time.Second,
		AuthToken:                   v.GetString("auth-token"),
		HeartbeatInterval:           time.Duration(v.GetUint("heartbeat-interval")) * time.Millisecond,
		ElectionTimeout:             time.Duration(v.GetUint("election-timeout")) * time.Millisecond,
		MaxRequestBytes:             v.GetUint("max-request-bytes"),
		MaxTxnOps:                   v.GetUint("max-txn-ops"),
		BackendBatchInterval:        v.GetDuration("backend-batch-interval"),
		BackendBatchLimit:           v.GetInt("backend-batch-limit"),
		QuotaBackendBytes:           v.GetInt64("quota-backend-bytes"),
		CorruptCheckTime:            v.GetDuration("corrupt-check-time"),
		ListenMetricsURLs:           urlList(v, "listen-metrics-urls"),
		Metrics:                     v.GetString("metrics"),
		WarningApplyDuration:        v.GetDuration("warning-apply-duration"),
		AutoCompactionMode:          v.GetString("auto-compaction-mode"),
		AutoCompactionRetention:     v.GetString("auto-compaction-retention"),
		AutoCompactionCheckInterval: v.GetDuration("auto-compaction-check-interval"),
		Logger:                      logger,
	}
	if cfg.DataDir == "" {
		cfg.DataDir = cfg.Name + ".kvd"
	}
	tlsConfigFrom(v, &cfg)
	gates, err := parseFeatureGates(v.GetString("feature-gates"))
	if err != nil {
		return cfg, err
	}
	cfg.InitialCorruptCheck = gates["InitialCorruptCheck"]
	if cfg.AuthToken == "" {
		// A Config made in code may leave it empty for simple tokens;
		// on the command line it is a mistake.
		return cfg, errors.New("--auth-token is empty: want simple, or jwt with its options")
	}
	if cfg.AutoCompactionMode == "" {
		// Validate lets a Config made in code leave it empty.
		return cfg, errors.New("undefined auto-compaction-mode")
	}
	if g := v.GetString("grpc-server"); g != "kvd" && g != "grpc-go" {
		return cfg, fmt.Errorf("--grpc-server %q: want kvd or grpc-go", g)
	}
	if cfg.BcryptCost < 4 || cfg.BcryptCost > 31 {
		return cfg, fmt.Errorf("--bcrypt-cost %d: want 4 to 31", cfg.BcryptCost)
	}
	return cfg, nil
}

// urlList reads a comma-separated flag, or a YAML list in a config file.
func urlList(v *viper.Viper, key string) []string {
	var out []string
	for _, item := range v.GetStringSlice(key) {
		for _, u := range strings.Split(item, ",") {
			if u = strings.TrimSpace(u); u != "" {
				out = append(out, u)
			}
		}
	}
	return out
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// newLogger writes to stderr, as etcd does by default: JSON records, or
// with console one line of key=value pairs each, for a person to read.
func newLogger(format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "console":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or console", format)
}

func printVersion() {
	fmt.Printf("kvd Version: %s\n", version.Version)
	fmt.Printf("etcd API Version: %s\n", version.APIVersion)
	fmt.Printf("Go Version: %s\n", runtime.Version())
	fmt.Printf("Go OS/Arch: %s/%s\n", runtime.GOOS, runtime.GOARCH)
}

// gcFloor is the heap goal floor for gcpace: --gc-heap-floor, unless GOGC
// is set, in which case the operator's choice is left alone.
func gcFloor(v *viper.Viper) uint64 {
	if os.Getenv("GOGC") != "" {
		return 0
	}
	return uint64(max(v.GetInt64("gc-heap-floor"), 0))
}

func run(cfg server.Config, gcHeapFloor uint64) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The two memory keepers run for the life of the process, each on a
	// goroutine run stops and waits for: gcpace spaces collections under
	// load, memtrim hands memory back once the member goes quiet.
	var keepers sync.WaitGroup
	keepers.Add(2)
	go func() { defer keepers.Done(); gcpace.Run(ctx, gcpace.Config{Floor: gcHeapFloor}) }()
	go func() { defer keepers.Done(); memtrim.Run(ctx, memtrim.Config{}) }()
	defer func() { stop(); keepers.Wait() }()
	s, err := server.NewContext(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return nil // stopped while waiting for discovery
		}
		return err
	}
	err = s.Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
