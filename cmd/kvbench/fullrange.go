package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// fullRangeCommand measures what large reads cost a server in memory:
// first the anonymous resident memory of --server-pids as the data sits
// (RssAnon, after --settle), then their peak resident memory (VmHWM, reset
// just before) while --clients workers each read the whole key space at
// once, in one of three ways (--mode):
//   - range: one Range without limit, the whole answer in one message;
//   - stream: one RangeStream, the answer in chunks the server sizes;
//   - page: Ranges of --page-size keys, each starting after the last key
//     of the one before, as a client paging by hand does.
func fullRangeCommand(o *options) *cobra.Command {
	var mode string
	var pageSize int64
	var settle time.Duration
	cmd := &cobra.Command{
		Use:   "full-range",
		Short: "Anonymous RSS at rest, then peak RSS while every client reads the whole key space at once",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			read, ok := fullReaders(pageSize)[mode]
			if !ok {
				return fmt.Errorf("--mode must be range, stream or page, not %q", mode)
			}
			if len(o.serverPIDs) == 0 {
				return errors.New("full-range needs --server-pids")
			}
			return o.fullRange(read, settle)
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "range", "range (one Range without limit), stream (RangeStream) or page (Ranges of --page-size)")
	cmd.Flags().Int64Var(&pageSize, "page-size", 1000, "keys per Range in --mode page")
	cmd.Flags().DurationVar(&settle, "settle", 3*time.Second, "wait this long before reading the servers' RssAnon")
	return cmd
}

// bigAnswer lets a client take a whole key space in one message; grpc's
// default limit of 4 MiB would refuse it.
var bigAnswer = grpc.MaxCallRecvMsgSize(math.MaxInt32)

// allKeys is a RangeRequest for every key.
func allKeys() *pb.RangeRequest {
	return &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}
}

// fullReaders are the ways to read every key, by --mode; each returns the
// number of keys it received.
func fullReaders(pageSize int64) map[string]func(context.Context, pb.KVClient) (int64, error) {
	return map[string]func(context.Context, pb.KVClient) (int64, error){
		"range": func(ctx context.Context, kv pb.KVClient) (int64, error) {
			resp, err := kv.Range(ctx, allKeys(), bigAnswer)
			if err != nil {
				return 0, err
			}
			return int64(len(resp.Kvs)), nil
		},
		"stream": func(ctx context.Context, kv pb.KVClient) (int64, error) {
			s, err := kv.RangeStream(ctx, allKeys(), bigAnswer)
			if err != nil {
				return 0, err
			}
			var n int64
			for {
				chunk, err := s.Recv()
				if errors.Is(err, io.EOF) {
					return n, nil
				}
				if err != nil {
					return n, err
				}
				n += int64(len(chunk.GetRangeResponse().GetKvs()))
			}
		},
		"page": func(ctx context.Context, kv pb.KVClient) (int64, error) {
			req := allKeys()
			req.Limit = pageSize
			var n int64
			for {
				resp, err := kv.Range(ctx, req, bigAnswer)
				if err != nil {
					return n, err
				}
				n += int64(len(resp.Kvs))
				if !resp.More || len(resp.Kvs) == 0 {
					return n, nil
				}
				// The next page starts just after this one's last key.
				req.Key = append(resp.Kvs[len(resp.Kvs)-1].Key, 0)
			}
		},
	}
}

// fullRange runs read once in each of o.clients workers, all at once, and
// prints the servers' anonymous RSS before and peak RSS during the reads.
func (o *options) fullRange(read func(context.Context, pb.KVClient) (int64, error), settle time.Duration) error {
	conns, err := o.dialConns()
	if err != nil {
		return err
	}
	defer closeAll(conns)
	time.Sleep(settle)
	anon, err := sumStatus(o.serverPIDs, "RssAnon")
	if err != nil {
		return err
	}
	resetPeakRSS(o.serverPIDs)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		keys     []int64
		firstErr error
	)
	start := time.Now()
	for w := range o.clients {
		kv := pb.NewKVClient(conns[w%len(conns)])
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			n, err := read(ctx, kv)
			mu.Lock()
			defer mu.Unlock()
			keys = append(keys, n)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	peak, err := sumStatus(o.serverPIDs, "VmHWM")
	if err != nil {
		return err
	}
	if firstErr != nil {
		return asUnsupported(fmt.Errorf("full range: %w", firstErr))
	}
	lo, hi := minMax(keys)
	if lo != hi {
		fmt.Fprintf(os.Stderr, "kvbench: readers saw between %d and %d keys\n", lo, hi)
	}
	fmt.Printf("%d readers read %d keys each in %.1f ms; server anonymous RSS before %.1f MiB, peak RSS during %.1f MiB\n",
		len(keys), hi, ms(elapsed), mib(anon), mib(peak))
	fmt.Printf("RESULT anon_rss_mib=%.1f peak_rss_mib=%.1f ms=%.1f keys=%d readers=%d\n", mib(anon), mib(peak), ms(elapsed), hi, len(keys))
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// minMax returns the smallest and the largest of ns (0, 0 for none).
func minMax(ns []int64) (lo, hi int64) {
	for i, n := range ns {
		if i == 0 || n < lo {
			lo = n
		}
		if i == 0 || n > hi {
			hi = n
		}
	}
	return lo, hi
}

// sumStatus adds up the /proc/<pid>/status field name (a size in kB) of
// pids, in bytes.
func sumStatus(pids []int, name string) (int64, error) {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return 0, fmt.Errorf("server memory: %w", err)
		}
		kib, err := statusKiB(string(b), name)
		if err != nil {
			return 0, fmt.Errorf("server memory: /proc/%d/status: %w", pid, err)
		}
		total += kib << 10
	}
	return total, nil
}

// rssCommand reports the memory --server-pids hold at rest: after
// --settle, their anonymous resident memory (RssAnon: heap and stacks,
// not the mapped database file, whose pages the kernel may drop) and
// their whole resident memory (VmRSS), each summed over the processes.
func rssCommand(o *options) *cobra.Command {
	var settle time.Duration
	cmd := &cobra.Command{
		Use:   "rss",
		Short: "Anonymous and whole resident memory of --server-pids, after --settle",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if len(o.serverPIDs) == 0 {
				return errors.New("rss needs --server-pids")
			}
			time.Sleep(settle)
			anon, err := sumStatus(o.serverPIDs, "RssAnon")
			if err != nil {
				return err
			}
			rss, err := sumStatus(o.serverPIDs, "VmRSS")
			if err != nil {
				return err
			}
			fmt.Printf("Server anonymous RSS %.1f MiB, RSS %.1f MiB\n", mib(anon), mib(rss))
			fmt.Printf("RESULT anon_rss_mib=%.1f rss_mib=%.1f\n", mib(anon), mib(rss))
			return nil
		},
	}
	cmd.Flags().DurationVar(&settle, "settle", 3*time.Second, "wait this long before reading")
	return cmd
}
