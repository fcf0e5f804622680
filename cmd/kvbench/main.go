// Command kvbench generates put, range, watch and lease load against any
// server speaking the etcd v3 API (kvd or etcd) and prints throughput and
// latency percentiles, so the two can be compared on the same machine in one
// run.
//
//	kvbench --endpoints 127.0.0.1:2379 --conns 100 --clients 100 put --total 100000 --val-size 256
//	kvbench --endpoints 127.0.0.1:2379 --clients 100 range foo --consistency s --total 100000
//	kvbench --endpoints 127.0.0.1:2379 watch --watchers 1000 --keys 10 --put-rate 100 --total 300
//	kvbench --endpoints 127.0.0.1:2379 --conns 100 --clients 100 lease-keepalive --leases 10000 --total 50000
//	kvbench --endpoints 127.0.0.1:2379 --conns 10 --clients 10 lease-expiry --leases 1000 --ttl 3
//
// The watch command reports events delivered per second as its rate and
// put-to-delivery times as its latencies; lease-keepalive and lease-expiry
// say what theirs mean in lease.go and lease_expiry.go. Every command exits
// with status 3 when the server answers the RPC it measures with
// Unimplemented.
//
// Each run ends with a RESULT line for scripts; a command that measures
// several things (lease-keepalive: grants, then keep-alives) prints one
// per thing, tagged part=NAME.
//
// It drives gRPC stubs directly, with --conns connections shared round-robin
// by --clients workers, so what it measures is the server, not a client
// library's retries and balancing. With several --endpoints (comma separated)
// connection i goes to endpoint i mod len(endpoints), as etcd's benchmark
// tool does, so the load spreads over all members when --conns is at least
// their number.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

type options struct {
	endpoints []string
	conns     int
	clients   int
	total     int
	// user is name:password to authenticate as; token is what that
	// gave, sent with every call.
	user  string
	token string
	// scrapeInterval, when positive, has every endpoint's /metrics
	// fetched that often during a put or range run; serverPIDs are the
	// processes whose CPU time the run reports per request.
	scrapeInterval time.Duration
	serverPIDs     []int
	// cacert, cert and key, as etcdctl's flags, make every connection
	// TLS (see tlsCreds).
	cacert, cert, key string
}

func main() {
	var o options
	os.Exit(exitCode(newRoot(&o).Execute()))
}

// newRoot is the kvbench command with its subcommands, filling o from the
// command line.
func newRoot(o *options) *cobra.Command {
	root := &cobra.Command{Use: "kvbench", Short: "Load generator for etcd v3 API servers", SilenceUsage: true}
	root.PersistentFlags().StringSliceVar(&o.endpoints, "endpoints", []string{"127.0.0.1:2379"}, "gRPC endpoints (host:port)")
	root.PersistentFlags().IntVar(&o.conns, "conns", 1, "number of gRPC connections")
	root.PersistentFlags().IntVar(&o.clients, "clients", 1, "number of concurrent workers")
	root.PersistentFlags().IntVar(&o.total, "total", 10000, "total number of requests")
	root.PersistentFlags().StringVar(&o.user, "user", "", "authenticate as name:password once, and send the token with every call")
	root.PersistentFlags().DurationVar(&o.scrapeInterval, "scrape-interval", 0, "put and range: fetch each endpoint's /metrics this often during the run, as a Prometheus scraper would (0: never)")
	root.PersistentFlags().IntSliceVar(&o.serverPIDs, "server-pids", nil, "put and range: report the CPU time these server processes used over the run, per request (from /proc)")
	root.PersistentFlags().StringVar(&o.cacert, "cacert", "", "connect over TLS, verifying servers with this CA bundle")
	root.PersistentFlags().StringVar(&o.cert, "cert", "", "connect over TLS, presenting this client certificate")
	root.PersistentFlags().StringVar(&o.key, "key", "", "the key of --cert")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if err := o.setTLS(); err != nil {
			return err
		}
		return o.login()
	}
	root.AddCommand(putCommand(o), rangeCommand(o), watchCommand(o),
		leaseKeepAliveCommand(o), leaseExpiryCommand(o), authSetupCommand(o), cliCommand(o), defragCommand(o),
		firstReadCommand(o), fullRangeCommand(o), rssCommand(o))
	return root
}

// exitCode is the process status for what the command returned.
func exitCode(err error) int {
	var unsupported errUnsupported
	switch {
	case err == nil:
		return 0
	case errors.As(err, &unsupported):
		return exitUnsupported
	default:
		return 1
	}
}

func putCommand(o *options) *cobra.Command {
	var keySize, valSize, keySpace int
	var sequential bool
	var leaseTTL int64
	cmd := &cobra.Command{
		Use:   "put",
		Short: "Benchmark puts",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			val := make([]byte, valSize)
			_, _ = rand.Read(val)
			lease, err := o.grantForRun(leaseTTL)
			if err != nil {
				return err
			}
			var seq atomic.Int64
			return o.run(func(ctx context.Context, kv pb.KVClient) error {
				k := randInt(int64(keySpace))
				if sequential {
					k = seq.Add(1) % int64(max(keySpace, 1))
				}
				_, err := kv.Put(ctx, &pb.PutRequest{Key: makeKey(k, keySize), Value: val, Lease: lease})
				return err
			})
		},
	}
	cmd.Flags().IntVar(&keySize, "key-size", 8, "key size in bytes")
	cmd.Flags().IntVar(&valSize, "val-size", 8, "value size in bytes")
	cmd.Flags().IntVar(&keySpace, "key-space-size", 1, "number of distinct keys")
	cmd.Flags().BoolVar(&sequential, "sequential-keys", false, "use sequential keys instead of random ones")
	cmd.Flags().Int64Var(&leaseTTL, "lease-ttl", 0, "attach every key to one lease of this many seconds, granted before the run (0: no lease); make it outlast the run, as it is not kept alive")
	return cmd
}

// grantForRun grants a lease of ttl seconds on the first endpoint for the
// whole run, or returns 0 when ttl is 0.
func (o *options) grantForRun(ttl int64) (int64, error) {
	if ttl == 0 {
		return 0, nil
	}
	if len(o.endpoints) == 0 {
		return 0, fmt.Errorf("--endpoints must name at least one endpoint")
	}
	conn, err := o.dial(o.endpoints[0])
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := pb.NewLeaseClient(conn).LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: ttl})
	if err != nil {
		return 0, fmt.Errorf("grant the run's lease: %w", asUnsupported(err))
	}
	return resp.ID, nil
}

func rangeCommand(o *options) *cobra.Command {
	var consistency string
	var limit int64
	cmd := &cobra.Command{
		Use:   "range key [end]",
		Short: "Benchmark ranges",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(_ *cobra.Command, args []string) error {
			if consistency != "l" && consistency != "s" {
				return fmt.Errorf("--consistency must be l or s, not %q", consistency)
			}
			req := &pb.RangeRequest{Key: []byte(args[0]), Serializable: consistency == "s", Limit: limit}
			if len(args) == 2 {
				req.RangeEnd = []byte(args[1])
			}
			return o.run(func(ctx context.Context, kv pb.KVClient) error {
				_, err := kv.Range(ctx, req)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&consistency, "consistency", "l", "l for linearizable, s for serializable")
	cmd.Flags().Int64Var(&limit, "limit", 0, "most keys to return per request")
	return cmd
}

func makeKey(n int64, size int) []byte {
	k := make([]byte, max(size, 8))
	binary.BigEndian.PutUint64(k, uint64(n))
	return k[:max(size, 1)]
}

func randInt(n int64) int64 {
	if n <= 1 {
		return 0
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.BigEndian.Uint64(b[:]) % uint64(n))
}

// run spreads o.total calls of op over o.clients workers and reports.
func (o *options) run(op func(context.Context, pb.KVClient) error) error {
	if o.conns < 1 || o.clients < 1 || len(o.endpoints) == 0 {
		return fmt.Errorf("--conns, --clients and --endpoints must each be at least one")
	}
	if o.conns < len(o.endpoints) {
		fmt.Fprintf(os.Stderr, "kvbench: only %d of %d endpoints get load; raise --conns to spread it over all\n", o.conns, len(o.endpoints))
	}
	conns, err := o.dialConns()
	if err != nil {
		return err
	}
	defer closeAll(conns)
	var (
		next      atomic.Int64
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, o.total)
		failures  atomic.Int64
		firstErr  atomic.Value
		wg        sync.WaitGroup
	)
	ob, err := o.observe()
	if err != nil {
		return err
	}
	start := time.Now()
	for w := range o.clients {
		kv := pb.NewKVClient(conns[w%len(conns)])
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, o.total/o.clients+1)
			for next.Add(1) <= int64(o.total) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t := time.Now()
				err := op(ctx, kv)
				cancel()
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	extra, err := ob.finish(len(latencies))
	if err != nil {
		return err
	}
	printSummaryWith("", latencies, elapsed, float64(len(latencies))/elapsed.Seconds(), failures.Load(), firstErr.Load(), extra)
	return nil
}

// dial opens a connection to one endpoint, whose calls carry the
// options' token when there is one.
func (o *options) dial(ep string) (*grpc.ClientConn, error) { return dial(ep, o.token) }

// dial opens a connection to one endpoint (host:port, or an http:// URL),
// whose calls carry token when it is not empty.
func dial(ep, token string) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if tlsCreds != nil {
		creds = tlsCreds
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(token)))
	}
	c, err := grpc.NewClient(strings.TrimPrefix(strings.TrimPrefix(ep, "http://"), "https://"), opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", ep, err)
	}
	return c, nil
}

// tlsCreds, set once from the flags before any command runs, secures
// every connection dial opens; nil means plain text.
var tlsCreds credentials.TransportCredentials

func (o *options) setTLS() error {
	if o.cacert == "" && o.cert == "" && o.key == "" {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.cert != "" || o.key != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return fmt.Errorf("load --cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if o.cacert != "" {
		b, err := os.ReadFile(o.cacert)
		if err != nil {
			return fmt.Errorf("read --cacert: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(b) {
			return fmt.Errorf("--cacert %s holds no PEM certificate", o.cacert)
		}
	}
	tlsCreds = credentials.NewTLS(cfg)
	return nil
}

// dialConns opens o.conns connections, connection i to endpoint i mod
// len(o.endpoints).
func (o *options) dialConns() ([]*grpc.ClientConn, error) {
	conns := make([]*grpc.ClientConn, 0, o.conns)
	for i := range o.conns {
		c, err := o.dial(o.endpoints[i%len(o.endpoints)])
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []*grpc.ClientConn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

func report(lat []time.Duration, elapsed time.Duration, failures int64, firstErr any) {
	printSummary("", lat, elapsed, float64(len(lat))/elapsed.Seconds(), failures, firstErr)
}

// percentile returns the sample at fraction p (0 to 1) of sorted, the
// nearest-rank sample at or above it, or 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// printSummary sorts lat and prints the human summary and the RESULT line,
// with rps as the rate and failures as the failed count. A part other than
// "" names what was measured when one run measures several things.
func printSummary(part string, lat []time.Duration, elapsed time.Duration, rps float64, failures int64, firstErr any) {
	printSummaryWith(part, lat, elapsed, rps, failures, firstErr, "")
}

// printSummaryWith is printSummary with extra fields (" name=value...")
// at the end of the RESULT line.
func printSummaryWith(part string, lat []time.Duration, elapsed time.Duration, rps float64, failures int64, firstErr any, extra string) {
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return percentile(lat, p) }
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	avg := time.Duration(0)
	if len(lat) > 0 {
		avg = sum / time.Duration(len(lat))
	}
	tag, title := "", "Summary"
	if part != "" {
		tag, title = "part="+part+" ", "Summary ("+part+")"
	}
	fmt.Printf("%s:\n  Total:\t%.4f secs.\n  Requests:\t%d ok, %d failed\n  Average:\t%.4f ms\n  Requests/sec:\t%.1f\n",
		title, elapsed.Seconds(), len(lat), failures, ms(avg), rps)
	fmt.Printf("Latency:\n  p50:\t%.4f ms\n  p90:\t%.4f ms\n  p99:\t%.4f ms\n  max:\t%.4f ms\n", ms(pct(0.5)), ms(pct(0.9)), ms(pct(0.99)), ms(pct(1)))
	if firstErr != nil {
		fmt.Printf("First error: %v\n", firstErr)
	}
	// One line for scripts to parse.
	fmt.Printf("RESULT %srps=%.1f p50_ms=%.4f p99_ms=%.4f ok=%d failed=%d%s\n", tag, rps, ms(pct(0.5)), ms(pct(0.99)), len(lat), failures, extra)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
