package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errUnsupported marks a server that answered the RPC a command measures
// (Watch, LeaseGrant, ...) with Unimplemented; main turns it into exit
// status 3 so scripts can tell "this server has no watch yet" apart from a
// failed run. The wrapped gRPC error names the service or method.
type errUnsupported struct{ err error }

func (e errUnsupported) Error() string { return "not supported by the server: " + e.err.Error() }

const exitUnsupported = 3

type watchOptions struct {
	watchers int
	streams  int
	keys     int
	putRate  float64
	valSize  int
	drain    time.Duration
	setup    time.Duration
	// idleRanges more watchers watch prefixes no put writes: what they
	// cost shows in the events' latency and in the servers' CPU per put.
	idleRanges int
}

// watchCommand measures watch event latency the way etcd's benchmark
// watch-latency does: watchers are opened on --streams gRPC streams over a
// small set of keys, then a single putter writes those keys round-robin at a
// fixed rate, and every delivery of an event to a watcher counts as one
// sample, timed from the moment its put was sent.
func watchCommand(o *options) *cobra.Command {
	var w watchOptions
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Benchmark watch event latency (--total is the number of puts)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return o.runWatch(w)
		},
	}
	cmd.Flags().IntVar(&w.watchers, "watchers", 1000, "number of watchers, spread evenly over the streams")
	cmd.Flags().IntVar(&w.streams, "streams", 1, "number of gRPC watch streams (spread round-robin over --conns)")
	cmd.Flags().IntVar(&w.keys, "keys", 10, "number of distinct keys watched and written; watcher i watches key i mod keys")
	cmd.Flags().Float64Var(&w.putRate, "put-rate", 100, "puts per second")
	cmd.Flags().IntVar(&w.valSize, "val-size", 32, "value size in bytes (at least 8, which carry the send time)")
	cmd.Flags().DurationVar(&w.drain, "drain-timeout", 10*time.Second, "after the last put, give up waiting once no event has arrived for this long")
	cmd.Flags().DurationVar(&w.setup, "setup-timeout", time.Minute, "how long creating all watchers may take")
	cmd.Flags().IntVar(&w.idleRanges, "idle-range-watchers", 0, "also open this many watchers, each on a prefix range no put writes, spread over the streams")
	return cmd
}

// watchKey names the i-th watched key. The prefix keeps these keys apart
// from the ones the put command writes.
func watchKey(i int) []byte { return fmt.Appendf(nil, "kvbench-watch/%06d", i) }

// stampValue writes the send time, as an offset from the run's start, into
// the first 8 bytes of val. Sender and receiver are the same process, so the
// offset comes from one monotonic clock.
func stampValue(val []byte, sent time.Duration) {
	binary.BigEndian.PutUint64(val, uint64(sent))
}

// eventLatency is how long an event whose value was stamped by stampValue
// took to arrive, given the arrival time as an offset from the same start.
// ok is false for a value too short to hold a stamp.
func eventLatency(val []byte, arrived time.Duration) (lat time.Duration, ok bool) {
	if len(val) < 8 {
		return 0, false
	}
	return arrived - time.Duration(binary.BigEndian.Uint64(val)), true
}

// watchersOn is how many of n watchers watch key k when watcher i watches key
// i mod keys.
func watchersOn(k, n, keys int) int {
	c := n / keys
	if k < n%keys {
		c++
	}
	return c
}

// expectedDeliveries is how many (event, watcher) deliveries the run should
// see when put p writes key p mod keys and watcher i watches key i mod keys.
func expectedDeliveries(puts, watchers, keys int) int64 {
	if keys < 1 {
		return 0
	}
	var total int64
	for k := range keys {
		putsOnK := watchersOn(k, puts, keys) // same round-robin split, applied to puts
		total += int64(putsOnK) * int64(watchersOn(k, watchers, keys))
	}
	return total
}

// eventRate is deliveries per second over the window from the first put's
// send to the last delivery.
func eventRate(deliveries int, firstSend, lastArrival time.Duration) float64 {
	span := lastArrival - firstSend
	if deliveries == 0 || span <= 0 {
		return 0
	}
	return float64(deliveries) / span.Seconds()
}

// watchStream is one gRPC watch stream and what its receiver has gathered.
type watchStream struct {
	stream  pb.Watch_WatchClient
	want    int // watchers to create on it
	created atomic.Int64
	ready   chan struct{} // closed once all its watchers exist
	done    chan struct{} // closed when the receiver returns

	// Written by the receiver only; read after done is closed.
	latencies   []time.Duration
	lastArrival time.Duration
	err         error
}

// receive reads responses until the stream ends, recording the latency of
// every PUT event and bumping delivered, the count shared by all streams.
func (s *watchStream) receive(start time.Time, delivered *atomic.Int64) {
	defer close(s.done)
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			s.err = err
			return
		}
		arrived := time.Since(start)
		switch {
		case resp.Canceled:
			s.err = fmt.Errorf("watch %d canceled by the server: %s", resp.WatchId, resp.CancelReason)
			return
		case resp.Created:
			if s.created.Add(1) == int64(s.want) {
				close(s.ready)
			}
			continue
		}
		n := 0
		for _, ev := range resp.Events {
			if ev.Type != mvccpb.PUT || ev.Kv == nil {
				continue
			}
			if lat, ok := eventLatency(ev.Kv.Value, arrived); ok {
				s.latencies = append(s.latencies, lat)
				n++
			}
		}
		if n > 0 {
			s.lastArrival = arrived
			delivered.Add(int64(n))
		}
	}
}

func (o *options) runWatch(w watchOptions) error {
	if w.watchers < 1 || w.streams < 1 || w.keys < 1 || w.putRate <= 0 || o.total < 1 || o.conns < 1 || len(o.endpoints) == 0 {
		return fmt.Errorf("--watchers, --streams, --keys, --put-rate, --total, --conns and --endpoints must each be positive")
	}
	if w.valSize < 8 {
		w.valSize = 8
	}
	conns, err := o.dialConns()
	if err != nil {
		return err
	}
	defer closeAll(conns)
	// The putter has a connection of its own, so its requests do not queue
	// behind the watch traffic on a shared HTTP/2 connection.
	putConn, err := o.dial(o.endpoints[0])
	if err != nil {
		return err
	}
	defer putConn.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	var delivered atomic.Int64

	// Open the streams and create the watchers; watcher i goes on stream
	// i mod streams and watches key i mod keys.
	streams := make([]*watchStream, w.streams)
	for i := range streams {
		st, err := pb.NewWatchClient(conns[i%len(conns)]).Watch(ctx)
		if err != nil {
			return classifyWatchErr(err)
		}
		want := watchersOn(i, w.watchers, w.streams) + watchersOn(i, w.idleRanges, w.streams)
		streams[i] = &watchStream{stream: st, want: want, ready: make(chan struct{}), done: make(chan struct{})}
		if streams[i].want == 0 {
			close(streams[i].ready)
		}
		go streams[i].receive(start, &delivered)
	}
	for i := range w.watchers + w.idleRanges {
		s := streams[i%w.streams]
		create := &pb.WatchCreateRequest{Key: watchKey(i % w.keys)}
		if i >= w.watchers {
			create = &pb.WatchCreateRequest{Key: idlePrefix(i), RangeEnd: idlePrefixEnd(i)}
		}
		req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: create}}
		if err := s.stream.Send(req); err != nil {
			// A failed Send only says the stream ended (io.EOF); the
			// receiver's Recv error carries the server's status.
			<-s.done
			if s.err != nil {
				err = s.err
			}
			return classifyWatchErr(err)
		}
	}
	setupDeadline := time.After(w.setup)
	for _, s := range streams {
		select {
		case <-s.ready:
		case <-s.done:
			return classifyWatchErr(s.err)
		case <-setupDeadline:
			return fmt.Errorf("only %d of %d watchers created within %v", created(streams), w.watchers+w.idleRanges, w.setup)
		}
	}
	setupTime := time.Since(start)

	// Put at a fixed rate, open loop: put i is sent at its scheduled time
	// whether or not earlier puts have returned, so a slow server does not
	// lower the offered rate.
	kv := pb.NewKVClient(putConn)
	interval := time.Duration(float64(time.Second) / w.putRate)
	var (
		putWG       sync.WaitGroup
		putFailures atomic.Int64
		putErr      atomic.Value
	)
	ob, err := o.observe()
	if err != nil {
		return err
	}
	firstSend := time.Since(start)
	for i := range o.total {
		if d := time.Until(start.Add(firstSend + time.Duration(i)*interval)); d > 0 {
			time.Sleep(d)
		}
		putWG.Add(1)
		go func() {
			defer putWG.Done()
			val := make([]byte, w.valSize)
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			defer pcancel()
			stampValue(val, time.Since(start))
			if _, err := kv.Put(pctx, &pb.PutRequest{Key: watchKey(i % w.keys), Value: val}); err != nil {
				putFailures.Add(1)
				putErr.CompareAndSwap(nil, err)
			}
		}()
	}
	putWG.Wait()

	// Wait for the outstanding events, giving up once they stop coming.
	expected := expectedDeliveries(o.total, w.watchers, w.keys)
	last, lastChange := delivered.Load(), time.Now()
	for last < expected && time.Since(lastChange) < w.drain && !allDone(streams) {
		time.Sleep(5 * time.Millisecond)
		if n := delivered.Load(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	cancel()
	extra, err := ob.finish(o.total)
	if err != nil {
		return err
	}

	var (
		lat         []time.Duration
		lastArrival time.Duration
		streamErr   error
	)
	for _, s := range streams {
		<-s.done
		lat = append(lat, s.latencies...)
		lastArrival = max(lastArrival, s.lastArrival)
		if s.err != nil && status.Code(s.err) != codes.Canceled && streamErr == nil {
			streamErr = s.err
		}
	}
	missed := max(expected-int64(len(lat)), 0)
	var firstErr any = putErr.Load()
	if firstErr == nil && streamErr != nil {
		firstErr = streamErr
	}
	fmt.Printf("Watch:\n  Watchers:\t%d on %d stream(s), %d key(s)\n  Setup:\t%.4f secs.\n  Puts:\t%d at %.0f/s, %d failed\n  Events:\t%d of %d expected delivered\n",
		w.watchers, w.streams, w.keys, setupTime.Seconds(), o.total, w.putRate, putFailures.Load(), len(lat), expected)
	// The report's request rate is the delivery rate, over the window from
	// the first put to the last event, and its latencies are event latencies.
	rate := eventRate(len(lat), firstSend, lastArrival)
	printSummaryWith("", lat, lastArrival-firstSend, rate, missed, firstErr, extra)
	return nil
}

// idlePrefix is the i-th prefix watched by an idle range watcher; no put
// writes under it.
func idlePrefix(i int) []byte { return fmt.Appendf(nil, "kvbench-idle/%06d/", i) }

// idlePrefixEnd ends the range of idlePrefix(i): '/' + 1 is '0'.
func idlePrefixEnd(i int) []byte { return fmt.Appendf(nil, "kvbench-idle/%06d0", i) }

func allDone(streams []*watchStream) bool {
	for _, s := range streams {
		select {
		case <-s.done:
		default:
			return false
		}
	}
	return true
}

func created(streams []*watchStream) int64 {
	var n int64
	for _, s := range streams {
		n += s.created.Load()
	}
	return n
}

// classifyWatchErr wraps an Unimplemented answer in errUnsupported.
func classifyWatchErr(err error) error {
	if err == nil {
		return errors.New("watch stream closed during setup")
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) && se.GRPCStatus().Code() == codes.Unimplemented {
		return errUnsupported{err}
	}
	return err
}
