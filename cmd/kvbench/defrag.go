package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// defragCommand measures what a defrag costs the writers of a member: it
// fills the member's database to --fill-bytes, deletes every
// --delete-every'th key and compacts so the defrag has pages to give
// back, then puts at a steady --rate and defragments the member
// meanwhile.
//
// Each put's latency counts from the moment the steady schedule meant to
// send it, so a put held back because the one before it was stuck counts
// its wait too. Reported: how long the defrag took, the longest gap
// between two acknowledged puts while it ran, the longest latency of a
// put due during it (p100), and the database size before and after.
func defragCommand(o *options) *cobra.Command {
	var (
		fillBytes   int64
		valSize     int
		deleteEvery int
		rate        int
		writers     int
		around      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "defrag",
		Short: "Fill a member, then measure the write pause its defrag causes",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if rate < 1 || writers < 1 || deleteEvery < 2 {
				return fmt.Errorf("--rate and --writers must be at least 1, --delete-every at least 2")
			}
			conn, err := o.dial(o.endpoints[0])
			if err != nil {
				return err
			}
			defer conn.Close()
			b := &defragBench{conn: conn, kv: pb.NewKVClient(conn), m: pb.NewMaintenanceClient(conn)}
			if err := b.fill(fillBytes, valSize, max(o.clients, 1)); err != nil {
				return err
			}
			if err := b.thin(deleteEvery, max(o.clients, 1)); err != nil {
				return err
			}
			return b.measure(rate, writers, around)
		},
	}
	cmd.Flags().Int64Var(&fillBytes, "fill-bytes", 1<<30, "fill the database until its size reaches this")
	cmd.Flags().IntVar(&valSize, "val-size", 64<<10, "size of each fill value")
	cmd.Flags().IntVar(&deleteEvery, "delete-every", 4, "delete every n'th fill key before compacting")
	cmd.Flags().IntVar(&rate, "rate", 200, "steady puts per second during the defrag")
	cmd.Flags().IntVar(&writers, "writers", 8, "workers sharing the steady rate")
	cmd.Flags().DurationVar(&around, "around", 2*time.Second, "steady load before and after the defrag")
	return cmd
}

type defragBench struct {
	conn *grpc.ClientConn
	kv   pb.KVClient
	m    pb.MaintenanceClient
	keys int64 // fill keys written, fillKey(0) to fillKey(keys-1)
}

func fillKey(i int64) []byte { return fmt.Appendf(nil, "defrag-fill/%09d", i) }

func (b *defragBench) dbSize() (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := b.m.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return 0, fmt.Errorf("status: %w", err)
	}
	return st.DbSize, nil
}

// fill puts values until the database is at least target bytes.
func (b *defragBench) fill(target int64, valSize, workers int) error {
	val := make([]byte, valSize)
	_, _ = rand.Read(val)
	start := time.Now()
	for {
		size, err := b.dbSize()
		if err != nil || size >= target {
			fmt.Printf("Filled: %d keys, database %d bytes, in %.1f s\n", b.keys, size, time.Since(start).Seconds())
			return err
		}
		// Enough for the rest, in steps so the size is checked again.
		n := min(max((target-size)/int64(valSize), 64), 4096)
		if err := b.parallel(b.keys, b.keys+n, workers, func(ctx context.Context, i int64) error {
			_, err := b.kv.Put(ctx, &pb.PutRequest{Key: fillKey(i), Value: val})
			return err
		}); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
		b.keys += n
	}
}

// thin deletes every n'th fill key and compacts away their history.
func (b *defragBench) thin(n, workers int) error {
	var last atomic.Int64
	err := b.parallel(0, b.keys, workers, func(ctx context.Context, i int64) error {
		if i%int64(n) != 0 {
			return nil
		}
		resp, err := b.kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: fillKey(i)})
		if err == nil {
			for r := last.Load(); resp.Header.Revision > r && !last.CompareAndSwap(r, resp.Header.Revision); r = last.Load() {
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := b.kv.Compact(ctx, &pb.CompactionRequest{Revision: last.Load(), Physical: true}); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

// parallel runs op for every i in [from, to) over workers goroutines.
func (b *defragBench) parallel(from, to int64, workers int, op func(context.Context, int64) error) error {
	var next atomic.Int64
	next.Store(from)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < to; i = next.Add(1) - 1 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err := op(ctx, i)
				cancel()
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// ack is one steady put: when it was due and when its answer came.
type ack struct{ due, done time.Time }

func (b *defragBench) measure(rate, writers int, around time.Duration) error {
	before, err := b.dbSize()
	if err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		acks     []ack
		failures atomic.Int64
		firstErr atomic.Value
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	val := make([]byte, 256)
	interval := time.Duration(int64(time.Second) * int64(writers) / int64(rate))
	begin := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			due := begin.Add(time.Duration(w) * interval / time.Duration(writers))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Until(due)):
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := b.kv.Put(ctx, &pb.PutRequest{Key: fmt.Appendf(nil, "defrag-load/%d/%d", w, i), Value: val})
				cancel()
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					mu.Lock()
					acks = append(acks, ack{due, time.Now()})
					mu.Unlock()
				}
				due = due.Add(interval)
			}
		}()
	}
	time.Sleep(around)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	dStart := time.Now()
	_, derr := b.m.Defragment(ctx, &pb.DefragmentRequest{})
	dEnd := time.Now()
	cancel()
	time.Sleep(around)
	close(stop)
	wg.Wait()
	if derr != nil {
		return fmt.Errorf("defragment: %w", derr)
	}
	after, err := b.dbSize()
	if err != nil {
		return err
	}
	gap, p100, lat := pauses(acks, dStart, dEnd)
	slices.Sort(lat)
	took := dEnd.Sub(dStart)
	fmt.Printf("Defrag:\n  Took:\t%.3f s\n  Database:\t%d -> %d bytes\n  Steady puts:\t%d ok, %d failed, %d due during the defrag\n",
		took.Seconds(), before, after, len(acks), failures.Load(), len(lat))
	fmt.Printf("  Longest gap between acknowledged puts during the defrag:\t%.1f ms\n  Put latency during the defrag: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		ms(gap), ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)), ms(p100))
	if err := firstErr.Load(); err != nil {
		fmt.Printf("First error: %v\n", err)
	}
	fmt.Printf("RESULT defrag_s=%.3f max_gap_ms=%.1f p100_ms=%.1f p99_ms=%.1f size_before=%d size_after=%d ok=%d failed=%d\n",
		took.Seconds(), ms(gap), ms(p100), ms(percentile(lat, 0.99)), before, after, len(acks), failures.Load())
	return nil
}

// pauses finds, for the defrag's window [from, to], the longest time
// without an acknowledged put (counting from the last one before the
// window to the first after it) and the latencies of the puts due in it.
func pauses(acks []ack, from, to time.Time) (gap, p100 time.Duration, lat []time.Duration) {
	for _, a := range acks {
		if !a.due.Before(from) && !a.due.After(to) {
			l := a.done.Sub(a.due)
			lat = append(lat, l)
			p100 = max(p100, l)
		}
	}
	slices.SortFunc(acks, func(a, b ack) int { return a.done.Compare(b.done) })
	prev := from
	for _, a := range acks {
		if a.done.Before(from) {
			prev = a.done
			continue
		}
		gap = max(gap, a.done.Sub(prev))
		prev = a.done
		if a.done.After(to) {
			break
		}
	}
	return gap, p100, lat
}
