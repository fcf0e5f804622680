package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvd-io/kvd/pkg/client"
)

// datascaleLoad is one workload of check datascale: how many key-value
// pairs to write, their size as announced, and from how many clients.
type datascaleLoad struct{ pairs, kvSize, clients int }

// datascaleLoads are etcdctl's workloads, by short and long name. Each
// pair is a 512-byte key and a 512-byte value.
var datascaleLoads = map[string]datascaleLoad{
	"s": {10000, 1024, 50}, "small": {10000, 1024, 50},
	"m": {100000, 1024, 200}, "medium": {100000, 1024, 200},
	"l": {1000000, 1024, 500}, "large": {1000000, 1024, 500},
	"xl": {3000000, 1024, 1000}, "xLarge": {3000000, 1024, 1000},
}

// residentMemoryMetric is the Prometheus metric the check reads before and
// after writing.
const residentMemoryMetric = "process_resident_memory_bytes"

type datascaleFlags struct {
	load, prefix            string
	autoCompact, autoDefrag bool
}

func newCheckDatascaleCommand(g *globals) *cobra.Command {
	f := &datascaleFlags{}
	cmd := &cobra.Command{
		Use:   "datascale [options]",
		Short: "Checks how much memory a server uses to hold a given amount of data",
		Long: `Writes a workload of key-value pairs and reports how much the resident memory
of the first endpoint's server grew meanwhile, read from its /metrics before
and after. The keys are deleted again afterwards.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return checkDatascale(g, cmd, f) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.load, "load", "s", "workload: s (small), m (medium), l (large) or xl (xLarge), from 10,000 to 3,000,000 key-value pairs")
	fs.StringVar(&f.prefix, "prefix", "/etcdctl-check-datascale/", "prefix of the keys written; it must hold no keys beforehand")
	fs.BoolVar(&f.autoCompact, "auto-compact", false, "compact the history up to the last revision afterwards")
	fs.BoolVar(&f.autoDefrag, "auto-defrag", false, "defragment every endpoint afterwards")
	return cmd
}

func checkDatascale(g *globals, cmd *cobra.Command, f *datascaleFlags) error {
	load, ok := datascaleLoads[f.load]
	if !ok {
		return fail(exitBadFeature, "unknown load option %v", f.load)
	}
	clients, err := openClients(g, cmd, load.clients)
	if err != nil {
		return err
	}
	defer closeClients(clients)
	ctx := context.Background()
	resp, err := clients[0].Get(ctx, f.prefix, client.WithPrefix(), client.WithLimit(1))
	if err != nil {
		return failWith(exitError, err)
	}
	if len(resp.Kvs) > 0 {
		return fail(exitInvalidInput, "prefix %q has keys. Delete with kvctl del --prefix %s first", f.prefix, f.prefix)
	}

	before := residentMemory(g, g.eps[0])
	if before == 0 {
		fmt.Fprintln(g.stdout, "FAIL: Could not read process_resident_memory_bytes before the put operations.")
		return exitSilently(exitError)
	}
	fmt.Fprintf(g.stdout, "Start data scale check for work load [%v key-value pairs, %v bytes per key-value, %v concurrent clients].\n",
		load.pairs, load.kvSize, load.clients)
	bar := startProgress(g, load.pairs)
	errs := writePairs(clients, load.pairs, f.prefix, bar)
	bar.Finish()

	after := residentMemory(g, g.eps[0])
	if after == 0 {
		fmt.Fprintln(g.stdout, "FAIL: Could not read process_resident_memory_bytes after the put operations.")
		return exitSilently(exitError)
	}
	dresp, err := clients[0].Delete(ctx, f.prefix, client.WithPrefix())
	if err != nil {
		return failWith(exitError, err)
	}
	if f.autoCompact {
		if err := compactAt(g, clients[0], dresp.Header.Revision); err != nil {
			return err
		}
	}
	if f.autoDefrag {
		if err := defragmentAll(g, clients[0]); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		fmt.Fprintln(g.stdout, "FAIL: too many errors")
		for msg, n := range errs {
			fmt.Fprintf(g.stdout, "FAIL: ERROR(%v) -> %d\n", msg, n)
		}
		return exitSilently(exitError)
	}
	mb := (after - before) / (1024 * 1024)
	fmt.Fprintf(g.stdout, "PASS: Approximate system memory used : %v MB.\n", strconv.FormatFloat(mb, 'f', 2, 64))
	return nil
}

// writePairs puts n random 512-byte keys with 512-byte values under
// prefix, spread over the clients, and counts the errors by message.
func writePairs(clients []*client.Client, n int, prefix string, bar *progressBar) map[string]int {
	ops := make(chan client.Op, len(clients))
	var (
		mu   sync.Mutex
		errs = map[string]int{}
		wg   sync.WaitGroup
	)
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for op := range ops {
				if _, err := c.Do(context.Background(), op); err != nil {
					mu.Lock()
					errs[err.Error()]++
					mu.Unlock()
				}
				bar.Add(1)
			}
		}()
	}
	key, value := make([]byte, 512), string(make([]byte, 512))
	for range n {
		binary.PutVarint(key, rand.Int64N(math.MaxInt64))
		ops <- client.OpPut(prefix+string(key), value)
	}
	close(ops)
	wg.Wait()
	return errs
}

// residentMemory reads the server's resident memory from the /metrics of
// endpoint, or says on stdout why it could not and returns 0, as etcdctl.
func residentMemory(g *globals, endpoint string) float64 {
	url := endpoint
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		url = "http://" + url
	}
	url += "/metrics"
	hc := &http.Client{Timeout: time.Minute}
	if strings.HasPrefix(url, "https://") {
		// etcdctl presents the client certificate and verifies the server
		// against the system's roots unless told to skip verification.
		pair, err := tls.LoadX509KeyPair(g.cert, g.key)
		if err != nil {
			fmt.Fprintf(g.stdout, "client certificate error: %v\n", err)
			return 0
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, InsecureSkipVerify: g.insecureSkipVerify,
		}}
	}
	resp, err := hc.Get(url)
	if err != nil {
		fmt.Fprintf(g.stdout, "fetch error: %v\n", err)
		return 0
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		fmt.Fprintf(g.stdout, "fetch error: reading %s: %v\n", url, err)
		return 0
	}
	value := ""
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, residentMemoryMetric); ok {
			value = strings.TrimSpace(rest)
			break
		}
	}
	if value == "" {
		fmt.Fprintf(g.stdout, "could not find: %v\n", residentMemoryMetric)
		return 0
	}
	v, err := strconv.ParseFloat(value, 64)
	if err != nil {
		fmt.Fprintf(g.stdout, "parse error: %v\n", err)
		return 0
	}
	return v
}
