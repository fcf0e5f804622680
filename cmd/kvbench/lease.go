package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// callTimeout bounds each unary call, as in run.
const callTimeout = 10 * time.Second

type keepAliveOptions struct {
	leases  int
	ttl     int64
	window  int
	target  string
	timeout time.Duration
}

// leaseKeepAliveCommand measures the three steps of a lease's life that a
// client drives, each reported by a RESULT line of its own:
//
//   - part=grant: --leases grants over --conns connections from --clients
//     workers; rps is grants answered per second, p50/p99 each grant's
//     request-to-answer time.
//   - part=keepalive: --total keep-alives over ONE LeaseKeepAlive stream,
//     cycling through the leases; rps is keep-alive answers per second from
//     the first send to the last answer, p50/p99 each keep-alive's
//     send-to-answer time. A sender and a receiver run side by side with at
//     most --window keep-alives unanswered, so the server always has work
//     queued while the latencies stay those of a bounded queue (about
//     window / rate), not of a generator that outran the server. An answer
//     with TTL 0 (the lease is gone) counts as failed.
//   - part=revoke: every lease revoked from the grant's workers; rps is
//     revocations answered per second, p50/p99 their latencies. Revoking
//     also keeps rounds from piling up leases in the server.
func leaseKeepAliveCommand(o *options) *cobra.Command {
	var k keepAliveOptions
	cmd := &cobra.Command{
		Use:   "lease-keepalive",
		Short: "Benchmark lease grants, then keep-alives over one stream (--total is the number of keep-alives)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return o.runLeaseKeepAlive(k)
		},
	}
	cmd.Flags().IntVar(&k.leases, "leases", 10000, "number of leases granted and kept alive")
	cmd.Flags().Int64Var(&k.ttl, "ttl", 60, "lease TTL in seconds; long enough that no lease expires while the run lasts")
	cmd.Flags().IntVar(&k.window, "window", 100, "most keep-alives unanswered at a time (at most --leases)")
	cmd.Flags().StringVar(&k.target, "target", "first", "member the keep-alive stream goes to: first (the first endpoint), leader or follower")
	cmd.Flags().DurationVar(&k.timeout, "timeout", 2*time.Minute, "how long granting and keeping alive may take in all")
	return cmd
}

func (o *options) runLeaseKeepAlive(k keepAliveOptions) error {
	if k.leases < 1 || k.ttl < 1 || k.window < 1 || o.total < 1 || o.conns < 1 || o.clients < 1 || len(o.endpoints) == 0 {
		return fmt.Errorf("--leases, --ttl, --window, --total, --conns, --clients and --endpoints must each be positive")
	}
	// One answer per lease in flight at most, so a lease's send time is
	// never overwritten before its answer arrives (answers come in order).
	k.window = min(k.window, k.leases)
	conns, err := o.dialConns()
	if err != nil {
		return err
	}
	defer closeAll(conns)
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()

	ids, grants := grantLeases(ctx, conns, o.clients, k.leases, k.ttl)
	if len(ids) == 0 {
		return fmt.Errorf("no lease granted: %w", asUnsupported(grants.firstErr))
	}
	fmt.Printf("Grant:\n  Leases:\t%d of %d granted, TTL %d s\n", len(ids), k.leases, k.ttl)
	grants.print("grant")

	ep, ka, kaErr := keepAliveOn(ctx, o.endpoints, k.target, ids, o.total, k.window)
	if kaErr == nil {
		fmt.Printf("Keep-alive:\n  Stream:\t1 to %s (%s)\n  Leases:\t%d, at most %d unanswered\n", ep, k.target, len(ids), k.window)
		ka.print("keepalive")
	}
	// Revoke even after a failure, so that rounds do not pile up leases in
	// the server.
	revokes := revokeLeases(conns, o.clients, ids)
	if kaErr != nil {
		return kaErr
	}
	fmt.Printf("Revoke:\n  Leases:\t%d\n", len(ids))
	revokes.print("revoke")
	return nil
}

// keepAliveOn runs keepAlive on a connection of its own to the member
// target names, and returns that member's endpoint with what it measured.
func keepAliveOn(ctx context.Context, endpoints []string, target string, ids []int64, total, window int) (string, phase, error) {
	ep, err := streamEndpoint(ctx, endpoints, target)
	if err != nil {
		return "", phase{}, err
	}
	cc, err := dial(ep, "")
	if err != nil {
		return "", phase{}, err
	}
	defer cc.Close()
	p, err := keepAlive(ctx, cc, ids, total, window)
	return ep, p, err
}

// phase is what a batch of calls measured: the latencies of those that
// succeeded, how many failed and the first failure.
type phase struct {
	lat      []time.Duration
	elapsed  time.Duration
	failures int64
	firstErr error
}

func (p *phase) fail(err error) {
	p.failures++
	if p.firstErr == nil {
		p.firstErr = err
	}
}

func (p *phase) merge(q phase) {
	p.lat = append(p.lat, q.lat...)
	p.failures += q.failures
	if p.firstErr == nil {
		p.firstErr = q.firstErr
	}
}

// rate is successful calls per second of the phase.
func (p phase) rate() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(len(p.lat)) / p.elapsed.Seconds()
}

func (p phase) print(part string) {
	var firstErr any
	if p.firstErr != nil {
		firstErr = p.firstErr
	}
	printSummary(part, p.lat, p.elapsed, p.rate(), p.failures, firstErr)
}

// forEach calls fn for every i in [0, n) from up to clients workers, worker
// w on conns[w mod len(conns)], each call bounded by callTimeout, and times
// the calls that succeed.
func forEach(ctx context.Context, conns []*grpc.ClientConn, clients, n int, fn func(ctx context.Context, cc *grpc.ClientConn, i int) error) phase {
	var (
		next atomic.Int64
		mu   sync.Mutex
		all  phase
		wg   sync.WaitGroup
	)
	start := time.Now()
	for w := range min(clients, n) {
		cc := conns[w%len(conns)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local phase
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				t := time.Now()
				err := fn(cctx, cc, i)
				cancel()
				if err != nil {
					local.fail(err)
					continue
				}
				local.lat = append(local.lat, time.Since(t))
			}
			mu.Lock()
			all.merge(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	return all
}

// grantLeases grants n leases of ttl seconds and returns the IDs of those
// granted, in no particular order.
func grantLeases(ctx context.Context, conns []*grpc.ClientConn, clients, n int, ttl int64) ([]int64, phase) {
	ids := make([]int64, n)
	p := forEach(ctx, conns, clients, n, func(ctx context.Context, cc *grpc.ClientConn, i int) error {
		resp, err := pb.NewLeaseClient(cc).LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: ttl})
		if err != nil {
			return err
		}
		if resp.Error != "" {
			return errors.New(resp.Error)
		}
		ids[i] = resp.ID
		return nil
	})
	return slices.DeleteFunc(ids, func(id int64) bool { return id == 0 }), p
}

// revokeLeases revokes ids from clients workers, with a minute of its own
// as it also cleans up after a run that failed or ran out of time. A lease
// already gone counts as revoked.
func revokeLeases(conns []*grpc.ClientConn, clients int, ids []int64) phase {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := forEach(ctx, conns, clients, len(ids), func(ctx context.Context, cc *grpc.ClientConn, i int) error {
		_, err := pb.NewLeaseClient(cc).LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: ids[i]})
		if status.Code(err) == codes.NotFound {
			return nil
		}
		return err
	})
	if p.firstErr != nil {
		fmt.Fprintf(os.Stderr, "kvbench: %d of %d leases not revoked (they expire after their TTL): %v\n", p.failures, len(ids), p.firstErr)
	}
	return p
}

// streamEndpoint picks the member the keep-alive stream goes to. A
// follower forwards every renewal to the leader, so which member the
// stream reaches changes what is measured; leader and follower ask each
// endpoint's Status to find one.
func streamEndpoint(ctx context.Context, endpoints []string, target string) (string, error) {
	switch target {
	case "first":
		return endpoints[0], nil
	case "leader", "follower":
	default:
		return "", fmt.Errorf("--target must be first, leader or follower, not %q", target)
	}
	for _, ep := range endpoints {
		cc, err := dial(ep, "")
		if err != nil {
			return "", err
		}
		sctx, cancel := context.WithTimeout(ctx, callTimeout)
		resp, err := pb.NewMaintenanceClient(cc).Status(sctx, &pb.StatusRequest{})
		cancel()
		_ = cc.Close()
		if err != nil {
			return "", fmt.Errorf("status of %s: %w", ep, err)
		}
		isLeader := resp.Header != nil && resp.Leader == resp.Header.MemberId
		if resp.Leader != 0 && !resp.IsLearner && isLeader == (target == "leader") {
			return ep, nil
		}
	}
	return "", fmt.Errorf("no %s among --endpoints %v", target, endpoints)
}

// keepAlive sends total keep-alives over one new stream on cc, cycling
// through ids, with at most window unanswered, and times each from its
// send to its answer. The sender runs in a goroutine of its own while this
// one reads, so the server never waits for the generator's round trip.
func keepAlive(ctx context.Context, cc *grpc.ClientConn, ids []int64, total, window int) (phase, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := pb.NewLeaseClient(cc).LeaseKeepAlive(ctx)
	if err != nil {
		return phase{}, asUnsupported(err)
	}
	index := make(map[int64]int, len(ids))
	for k, id := range ids {
		index[id] = k
	}
	// sentAt[k] is when lease k's unanswered keep-alive was sent, as an
	// offset from start; atomic because the sender writes it and the
	// receiver reads it with no other synchronization between them.
	sentAt := make([]atomic.Int64, len(ids))
	slots := make(chan struct{}, window)
	start := time.Now()
	sendErr := make(chan error, 1)
	go func() {
		sendErr <- sendKeepAlives(ctx, stream, ids, total, slots, sentAt, start)
	}()
	defer func() {
		cancel() // unblocks a sender still waiting for a slot
		<-sendErr
	}()

	p := phase{lat: make([]time.Duration, 0, total)}
	for got := 0; got < total; got++ {
		resp, err := stream.Recv()
		if err != nil {
			// A failed Send only says the stream ended; Recv's error
			// carries the server's status.
			return p, fmt.Errorf("keep-alive stream ended after %d of %d answers: %w", got, total, asUnsupported(err))
		}
		at := time.Since(start)
		<-slots
		k, ok := index[resp.ID]
		switch {
		case !ok:
			p.fail(fmt.Errorf("answer for lease %x, which was not sent", resp.ID))
		case resp.TTL <= 0:
			p.fail(fmt.Errorf("lease %x not found by the server", resp.ID))
		default:
			p.lat = append(p.lat, at-time.Duration(sentAt[k].Load()))
		}
		p.elapsed = at
	}
	_ = stream.CloseSend()
	return p, nil
}

// sendKeepAlives is keepAlive's sender: keep-alive i renews lease i mod
// len(ids) once one of the window's slots is free.
func sendKeepAlives(ctx context.Context, stream pb.Lease_LeaseKeepAliveClient, ids []int64, total int,
	slots chan struct{}, sentAt []atomic.Int64, start time.Time) error {
	for i := range total {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		k := i % len(ids)
		sentAt[k].Store(int64(time.Since(start)))
		if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: ids[k]}); err != nil {
			return err
		}
	}
	return nil
}

// asUnsupported wraps an Unimplemented answer in errUnsupported, so main
// exits with status 3, and returns any other error as it is.
func asUnsupported(err error) error {
	if status.Code(err) == codes.Unimplemented {
		return errUnsupported{err}
	}
	return err
}
