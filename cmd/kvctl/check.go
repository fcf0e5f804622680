package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvd-io/kvd/pkg/client"
)

// perfLoad is one workload of check perf: writes per second to ask for,
// from how many clients.
type perfLoad struct{ rate, clients int }

// perfLoads are etcdctl's workloads, by short and long name.
var perfLoads = map[string]perfLoad{
	"s": {150, 50}, "small": {150, 50},
	"m": {1000, 200}, "medium": {1000, 200},
	"l": {8000, 500}, "large": {8000, 500},
	"xl": {15000, 1000}, "xLarge": {15000, 1000},
}

type perfFlags struct {
	load, prefix            string
	autoCompact, autoDefrag bool
	seconds                 int
}

func newCheckCommand(g *globals) *cobra.Command {
	check := &cobra.Command{
		Use:     "check <subcommand>",
		Short:   "Checks of the cluster's properties",
		GroupID: groupUtility,
	}
	f := &perfFlags{}
	perf := &cobra.Command{
		Use:   "perf [options]",
		Short: "Checks that the cluster sustains a write load",
		Long: `Writes 1 KiB values under random 256-byte keys at a fixed rate for a minute,
then reports PASS or FAIL for the throughput reached, the slowest write and
the spread of write times, and deletes the keys again.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return checkPerf(g, cmd, f) },
	}
	fs := perf.Flags()
	fs.StringVar(&f.load, "load", "s", "workload: s (small), m (medium), l (large) or xl (xLarge), from 150 to 15000 writes/s")
	fs.StringVar(&f.prefix, "prefix", "/etcdctl-check-perf/", "prefix of the keys written; it must hold no keys beforehand")
	fs.BoolVar(&f.autoCompact, "auto-compact", false, "compact the history up to the last revision afterwards")
	fs.BoolVar(&f.autoDefrag, "auto-defrag", false, "defragment every endpoint afterwards")
	fs.IntVar(&f.seconds, "duration", 60, "how long to write, in seconds")
	_ = fs.MarkHidden("duration") // etcdctl has no such flag; tests shorten the run with it
	check.AddCommand(perf, newCheckDatascaleCommand(g))
	return check
}

// perfStats sums up the writes.
type perfStats struct {
	mu        sync.Mutex
	latencies []float64 // seconds, of the writes that succeeded
	errors    map[string]int
}

func (s *perfStats) add(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errors[err.Error()]++
		return
	}
	s.latencies = append(s.latencies, d.Seconds())
}

// summary is writes per second over elapsed, the slowest write, and the
// standard deviation of write times.
func (s *perfStats) summary(elapsed time.Duration) (rps, slowest, stddev float64) {
	if len(s.latencies) == 0 {
		return 0, 0, 0
	}
	sort.Float64s(s.latencies)
	var sum float64
	for _, l := range s.latencies {
		sum += l
	}
	mean := sum / float64(len(s.latencies))
	var sq float64
	for _, l := range s.latencies {
		sq += (l - mean) * (l - mean)
	}
	n := float64(len(s.latencies))
	return n / elapsed.Seconds(), s.latencies[len(s.latencies)-1], math.Sqrt(sq / n)
}

func checkPerf(g *globals, cmd *cobra.Command, f *perfFlags) error {
	load, ok := perfLoads[f.load]
	if !ok {
		return fail(exitBadFeature, "unknown load option %v", f.load)
	}
	clients, err := openClients(g, cmd, load.clients)
	if err != nil {
		return err
	}
	defer closeClients(clients)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(f.seconds)*time.Second)
	defer cancel()
	stopOnInterrupt(ctx, cancel, func() { _ = perfCleanup(g, clients[0], f.prefix, false) })

	if err := checkPrefixEmpty(ctx, clients[0], f.prefix); err != nil {
		return err
	}
	stats := &perfStats{errors: map[string]int{}}
	start := time.Now()
	bar := startProgress(g, f.seconds)
	go countSeconds(ctx, bar, f.seconds)
	runPerfLoad(ctx, clients, load.rate, f.prefix, stats)
	elapsed := time.Since(start)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		bar.Set(f.seconds) // the whole run, whichever tick came last
	}
	bar.Finish()

	if err := perfCleanup(g, clients[0], f.prefix, f.autoCompact); err != nil {
		return err
	}
	if f.autoDefrag {
		if err := defragmentAll(g, clients[0]); err != nil {
			return err
		}
	}
	return perfVerdict(g, stats, elapsed, load.rate)
}

func checkPrefixEmpty(ctx context.Context, c *client.Client, prefix string) error {
	resp, err := c.Get(ctx, prefix, client.WithPrefix(), client.WithLimit(1))
	if err != nil {
		return failWith(exitError, err)
	}
	if len(resp.Kvs) > 0 {
		return fail(exitInvalidInput, "prefix %q has keys. Delete with 'kvctl del --prefix %s' first", prefix, prefix)
	}
	return nil
}

// runPerfLoad writes at rate per second, spread over the clients, until
// ctx ends, and waits for the writes in flight.
func runPerfLoad(ctx context.Context, clients []*client.Client, rate int, prefix string, stats *perfStats) {
	ops := make(chan client.Op, len(clients))
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for op := range ops {
				begin := time.Now()
				_, err := c.Do(context.Background(), op)
				stats.add(time.Since(begin), err)
			}
		}()
	}
	value := string(make([]byte, 1024))
	key := make([]byte, 256)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	defer wg.Wait()
	defer close(ops)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		binary.PutVarint(key, rand.Int64N(math.MaxInt64))
		select {
		case ops <- client.OpPut(prefix+string(key), value):
		case <-ctx.Done():
			return
		}
	}
}

// perfCleanup deletes the keys written, and compacts when asked.
func perfCleanup(g *globals, c *client.Client, prefix string, compact bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Delete(ctx, prefix, client.WithPrefix())
	if err != nil {
		fmt.Fprintf(g.stdout, "FAIL: Cleanup failed during key deletion: ERROR(%v)\n", err)
		return nil
	}
	if !compact {
		return nil
	}
	return compactAt(g, c, resp.Header.Revision)
}

// compactAt compacts the history up to rev physically, saying so before
// and after, as etcdctl's checks do.
func compactAt(g *globals, c *client.Client, rev int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fmt.Fprintf(g.stdout, "Compacting with revision %d\n", rev)
	if _, err := c.Compact(ctx, rev, client.WithCompactPhysical()); err != nil {
		return failWith(exitError, err)
	}
	fmt.Fprintf(g.stdout, "Compacted with revision %d\n", rev)
	return nil
}

// openClients prepares the command and opens n clients to the endpoints,
// as the checks spread their load over many connections.
func openClients(g *globals, cmd *cobra.Command, n int) ([]*client.Client, error) {
	if _, err := g.prepare(cmd); err != nil {
		return nil, err
	}
	clients := make([]*client.Client, 0, n)
	for range n {
		c, err := g.connect(nil)
		if err != nil {
			closeClients(clients)
			return nil, err
		}
		clients = append(clients, c)
	}
	return clients, nil
}

func closeClients(clients []*client.Client) {
	for _, c := range clients {
		c.Close()
	}
}

// defragmentAll defragments every endpoint c knows, one after another.
func defragmentAll(g *globals, c *client.Client) error {
	for _, ep := range c.Endpoints() {
		if err := defragment(g, c, ep); err != nil {
			return err
		}
	}
	return nil
}

func defragment(g *globals, c *client.Client, ep string) error {
	fmt.Fprintf(g.stdout, "Defragmenting %q\n", ep)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Defragment(ctx, ep); err != nil {
		return failWith(exitError, err)
	}
	fmt.Fprintf(g.stdout, "Defragmented %q\n", ep)
	return nil
}

// perfVerdict prints etcdctl's PASS/FAIL lines: no errors, at least 90%
// of the asked rate, no write slower than half a second, and a standard
// deviation under 100ms.
func perfVerdict(g *globals, stats *perfStats, elapsed time.Duration, rate int) error {
	rps, slowest, stddev := stats.summary(elapsed)
	ok := true
	if len(stats.errors) > 0 {
		fmt.Fprintln(g.stdout, "FAIL: too many errors")
		for msg, n := range stats.errors {
			fmt.Fprintf(g.stdout, "FAIL: ERROR(%v) -> %d\n", msg, n)
		}
		ok = false
	}
	if rps/float64(rate) <= 0.9 {
		fmt.Fprintf(g.stdout, "FAIL: Throughput too low: %d writes/s\n", int(rps)+1)
		ok = false
	} else {
		fmt.Fprintf(g.stdout, "PASS: Throughput is %d writes/s\n", int(rps)+1)
	}
	if slowest > 0.5 {
		fmt.Fprintf(g.stdout, "Slowest request took too long: %fs\n", slowest)
		ok = false
	} else {
		fmt.Fprintf(g.stdout, "PASS: Slowest request took %fs\n", slowest)
	}
	if stddev > 0.1 {
		fmt.Fprintf(g.stdout, "Stddev too high: %fs\n", stddev)
		ok = false
	} else {
		fmt.Fprintf(g.stdout, "PASS: Stddev is %fs\n", stddev)
	}
	if !ok {
		fmt.Fprintln(g.stdout, "FAIL")
		return exitSilently(exitError)
	}
	fmt.Fprintln(g.stdout, "PASS")
	return nil
}

// stopOnInterrupt cancels the check on Ctrl-C and cleans up what it wrote.
func stopOnInterrupt(ctx context.Context, cancel context.CancelFunc, cleanup func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	go func() {
		defer signal.Stop(sig)
		select {
		case <-sig:
			cancel()
			cleanup()
		case <-ctx.Done():
		}
	}()
}

// countSeconds shows the seconds of the run gone by, as etcdctl's bar.
func countSeconds(ctx context.Context, bar *progressBar, seconds int) {
	if bar == nil {
		return
	}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			bar.Set(min(int(time.Since(start)/time.Second), seconds))
		}
	}
}
