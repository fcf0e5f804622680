package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type expiryOptions struct {
	leases  int
	ttl     int64
	drain   time.Duration
	timeout time.Duration
}

// leaseExpiryCommand measures how late a server deletes the keys of leases
// that ran out. It watches a prefix of its own (DELETE events only), then
// grants --leases leases of --ttl seconds over --conns connections from
// --clients workers and puts one key under the prefix on each. A lease is
// due its TTL (as the grant answered it) after its grant's answer arrived;
// its key's lateness is the arrival of the key's DELETE event minus that
// due time. Negative lateness is possible by up to a grant's round trip,
// since the server starts the clock when it applies the grant.
//
// The RESULT line's p50/p99 are the lateness percentiles (lower is better),
// and its rps is leases expired per second over the window from the first
// lease falling due to the last DELETE event: how fast a mass expiry is
// cleared. ok is the keys whose deletion was seen; failed counts leases
// that got no key (grant or put failed), keys whose deletion never came
// (within --drain-timeout of the last one due), and keys deleted early,
// before their TTL had passed since the grant was sent, which no correct
// server does.
func leaseExpiryCommand(o *options) *cobra.Command {
	var e expiryOptions
	cmd := &cobra.Command{
		Use:   "lease-expiry",
		Short: "Benchmark how late keys are deleted after their lease's TTL (--total is unused)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return o.runLeaseExpiry(e)
		},
	}
	cmd.Flags().IntVar(&e.leases, "leases", 1000, "number of leases granted, each with one key")
	cmd.Flags().Int64Var(&e.ttl, "ttl", 3, "lease TTL in seconds (servers raise it to their minimum, 2 s by default)")
	cmd.Flags().DurationVar(&e.drain, "drain-timeout", 10*time.Second, "after the last lease is due, give up once no deletion has arrived for this long")
	cmd.Flags().DurationVar(&e.timeout, "timeout", 2*time.Minute, "how long the whole run may take")
	return cmd
}

// expiryRun is one lease-expiry run's state. Offsets are from start, on
// this process's monotonic clock, which the server's deadlines also follow.
type expiryRun struct {
	start  time.Time
	prefix []byte

	// Per lease i, written by the worker that granted it; 0 in due means
	// the lease got no key.
	sent []time.Duration // grant sent
	due  []time.Duration // grant answered + TTL
	ttl  []time.Duration // as the grant answered it

	// Per lease i, written by the watcher only; read after it is done.
	deleted    []time.Duration // DELETE event of its key arrived; 0 if none
	lastDelete time.Duration
	watchErr   error
	deletions  atomic.Int64
	done       chan struct{} // closed when the watcher returns
}

func (o *options) runLeaseExpiry(e expiryOptions) error {
	if e.leases < 1 || e.ttl < 1 || o.conns < 1 || o.clients < 1 || len(o.endpoints) == 0 {
		return fmt.Errorf("--leases, --ttl, --conns, --clients and --endpoints must each be positive")
	}
	conns, err := o.dialConns()
	if err != nil {
		return err
	}
	defer closeAll(conns)
	// The watch has a connection of its own, so its events do not queue
	// behind the grants and puts on a shared HTTP/2 connection.
	watchConn, err := o.dial(o.endpoints[0])
	if err != nil {
		return err
	}
	defer watchConn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()

	r := newExpiryRun(e.leases)
	if err := r.startWatch(ctx, watchConn); err != nil {
		return err
	}
	setup := forEach(ctx, conns, o.clients, e.leases, func(ctx context.Context, cc *grpc.ClientConn, i int) error {
		return r.grantWithKey(ctx, cc, i, e.ttl)
	})
	if int(setup.failures) == e.leases {
		return fmt.Errorf("no lease granted with a key: %w", asUnsupported(setup.firstErr))
	}
	r.waitDeletions(ctx, e.drain)
	cancel()
	<-r.done
	if r.watchErr != nil && status.Code(r.watchErr) != codes.Canceled {
		return fmt.Errorf("watch ended early: %w", r.watchErr)
	}

	res := r.result()
	fmt.Printf("Expiry:\n  Leases:\t%d with a key of %d, TTL %d s, set up in %.4f secs. (%.1f/s)\n  Deleted:\t%d (%d early), %d missed\n",
		len(setup.lat), e.leases, e.ttl, setup.elapsed.Seconds(), setup.rate(), len(res.lat)+res.early, res.early, res.missed)
	firstErr := setup.firstErr
	switch {
	case firstErr != nil:
	case res.early > 0:
		firstErr = fmt.Errorf("%d keys deleted before their TTL had passed", res.early)
	case res.missed > 0:
		firstErr = fmt.Errorf("%d keys not deleted within %v of the last lease due", res.missed, e.drain)
	}
	var first any
	if firstErr != nil {
		first = firstErr
	}
	failures := setup.failures + int64(res.early+res.missed)
	printSummary("", res.lat, res.window, res.rate(), failures, first)
	return nil
}

func newExpiryRun(n int) *expiryRun {
	var id [6]byte
	_, _ = rand.Read(id[:])
	return &expiryRun{
		start: time.Now(),
		// A prefix of its own per run, so rounds do not see each other's
		// keys and the watch sees no one else's.
		prefix:  []byte("kvbench-lease/" + hex.EncodeToString(id[:]) + "/"),
		sent:    make([]time.Duration, n),
		due:     make([]time.Duration, n),
		ttl:     make([]time.Duration, n),
		deleted: make([]time.Duration, n),
		done:    make(chan struct{}),
	}
}

func (r *expiryRun) key(i int) []byte { return strconv.AppendInt(bytes.Clone(r.prefix), int64(i), 10) }

// index is the lease number of key, or -1 for a key this run did not put.
func (r *expiryRun) index(key []byte) int {
	rest, ok := bytes.CutPrefix(key, r.prefix)
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(string(rest))
	if err != nil || i < 0 || i >= len(r.deleted) {
		return -1
	}
	return i
}

// grantWithKey grants lease i and puts its key on it.
func (r *expiryRun) grantWithKey(ctx context.Context, cc *grpc.ClientConn, i int, ttl int64) error {
	sent := time.Since(r.start)
	resp, err := pb.NewLeaseClient(cc).LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: ttl})
	if err != nil {
		return err
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	answered := time.Since(r.start)
	if _, err := pb.NewKVClient(cc).Put(ctx, &pb.PutRequest{Key: r.key(i), Lease: resp.ID}); err != nil {
		return fmt.Errorf("put with lease: %w", err)
	}
	r.sent[i], r.ttl[i] = sent, time.Duration(resp.TTL)*time.Second
	r.due[i] = answered + r.ttl[i]
	return nil
}

// startWatch opens a watch on the run's prefix for DELETE events and, once
// the server has created it, leaves a goroutine recording them.
func (r *expiryRun) startWatch(ctx context.Context, cc *grpc.ClientConn) error {
	stream, err := pb.NewWatchClient(cc).Watch(ctx)
	if err != nil {
		return asUnsupported(err)
	}
	end := bytes.Clone(r.prefix)
	end[len(end)-1]++ // the prefix ends in '/', which has a successor
	req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: r.prefix, RangeEnd: end, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}}}}
	if err := stream.Send(req); err != nil {
		_, err = stream.Recv() // Recv's error carries the server's status
		return fmt.Errorf("watch %s: %w", r.prefix, asUnsupported(err))
	}
	resp, err := stream.Recv()
	switch {
	case err != nil:
		return fmt.Errorf("watch %s: %w", r.prefix, asUnsupported(err))
	case resp.Canceled || !resp.Created:
		return fmt.Errorf("watch %s not created: %s", r.prefix, resp.CancelReason)
	}
	go r.watch(stream)
	return nil
}

// watch records when each key's DELETE event arrives until the stream ends.
func (r *expiryRun) watch(stream pb.Watch_WatchClient) {
	defer close(r.done)
	for {
		resp, err := stream.Recv()
		if err != nil {
			r.watchErr = err
			return
		}
		at := time.Since(r.start)
		if resp.Canceled {
			r.watchErr = fmt.Errorf("watch canceled by the server: %s", resp.CancelReason)
			return
		}
		for _, ev := range resp.Events {
			if ev.Type != mvccpb.DELETE || ev.Kv == nil {
				continue
			}
			if i := r.index(ev.Kv.Key); i >= 0 && r.deleted[i] == 0 {
				r.deleted[i], r.lastDelete = at, at
				r.deletions.Add(1)
			}
		}
	}
}

// waitDeletions returns once every key put has been deleted, or the last
// lease has been due for a while and no deletion has come for drain, or the
// watch or ctx ended.
func (r *expiryRun) waitDeletions(ctx context.Context, drain time.Duration) {
	want, lastDue := int64(0), time.Duration(0)
	for _, d := range r.due {
		if d != 0 {
			want++
			lastDue = max(lastDue, d)
		}
	}
	last, lastChange := r.deletions.Load(), time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for last < want {
		select {
		case <-ctx.Done():
			return
		case <-r.done:
			return
		case <-tick.C:
		}
		if n := r.deletions.Load(); n != last {
			last, lastChange = n, time.Now()
		}
		if time.Since(r.start) > lastDue && time.Since(lastChange) > drain {
			return
		}
	}
}

// expiryResult is what a finished run measured.
type expiryResult struct {
	lat           []time.Duration // lateness of each key deleted in time
	early, missed int
	window        time.Duration // from the first lease due to the last deletion
}

func (res expiryResult) rate() float64 {
	if res.window <= 0 {
		return 0
	}
	return float64(len(res.lat)) / res.window.Seconds()
}

// result turns the recorded times into lateness samples; the watcher must
// be done.
func (r *expiryRun) result() expiryResult {
	var res expiryResult
	firstDue := time.Duration(-1)
	for i, due := range r.due {
		switch {
		case due == 0: // no key, already counted as failed
			continue
		case r.deleted[i] == 0:
			res.missed++
		case r.deleted[i] < r.sent[i]+r.ttl[i]:
			res.early++
		default:
			res.lat = append(res.lat, r.deleted[i]-due)
		}
		if firstDue < 0 || due < firstDue {
			firstDue = due
		}
	}
	if firstDue >= 0 {
		res.window = r.lastDelete - firstDue
	}
	return res
}
