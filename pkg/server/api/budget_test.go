package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

func (b *answerBudget) state() (held int64, inUse, spares int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held, b.inUse, len(b.spares)
}

// TestAnswerBudget walks a budget of 3 MiB through its cases: small answers
// do not count, an answer waits while the budget is full and gets the
// buffer of one written out, spares go once nothing is in flight, an answer
// bigger than the budget goes alone, and a reader stops waiting at its
// context's end or goes ahead over budget after patience.
func TestAnswerBudget(t *testing.T) {
	const mib = 1 << 20
	b := newAnswerBudget(3*mib, time.Hour)
	ctx := context.Background()

	if tk, buf, ok := b.tryTake(budgetMin - 1); !ok || tk != nil || buf != nil {
		t.Fatal("an answer below budgetMin was counted")
	}
	t1, buf1, ok1 := b.tryTake(2 * mib)
	t2, _, ok2 := b.tryTake(mib)
	if !ok1 || !ok2 || cap(buf1) != 2*mib {
		t.Fatal("answers within budget refused")
	}
	if _, _, ok := b.tryTake(mib); ok {
		t.Fatal("an answer beyond the budget was let in")
	}
	type taken struct {
		tk  *budgetTicket
		buf []byte
		err error
	}
	got := make(chan taken)
	go func() {
		tk, buf, err := b.take(ctx, mib+1)
		got <- taken{tk, buf, err}
	}()
	t1.Put(&buf1) // gRPC wrote the first answer out
	w := <-got
	if w.err != nil || w.tk == nil {
		t.Fatal("waiting reader got no ticket:", w.err)
	}
	if cap(w.buf) != 2*mib || &w.buf[:1][0] != &buf1[:1][0] {
		t.Fatalf("waiting reader did not get the written answer's buffer (cap %d)", cap(w.buf))
	}
	if held, inUse, spares := b.state(); held != 3*mib || inUse != 2 || spares != 0 {
		t.Fatalf("after the waiting reader took the spare: held %d, in use %d, spares %d", held, inUse, spares)
	}
	w.tk.Put(&w.buf)
	if held, inUse, spares := b.state(); held != 3*mib || inUse != 1 || spares != 1 {
		t.Fatalf("with one answer in flight: held %d, in use %d, spares %d", held, inUse, spares)
	}
	t2.release()
	if held, inUse, spares := b.state(); held != 0 || inUse != 0 || spares != 0 {
		t.Fatalf("with nothing in flight: held %d, in use %d, spares %d", held, inUse, spares)
	}

	big, buf, ok := b.tryTake(5 * mib)
	if !ok || cap(buf) != 5*mib {
		t.Fatal("an answer bigger than the budget was refused with the budget empty")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := b.take(cctx, mib); !errors.Is(err, context.Canceled) {
		t.Fatalf("take with a cancelled context: %v", err)
	}
	b.patience = time.Millisecond
	if tk, buf, err := b.take(ctx, mib); err != nil || tk != nil || buf != nil {
		t.Fatal("take after patience did not go ahead over budget")
	}
	big.release()
}

// TestAnswerBudgetCollected checks the safety net: an answer whose buffer
// never reaches gRPC gives its bytes back once it is garbage.
func TestAnswerBudgetCollected(t *testing.T) {
	b := newAnswerBudget(4<<20, time.Hour)
	func() {
		tk, buf, _ := b.tryTake(2 << 20)
		holdBudget(append(buf, 1), tk)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for held, _, _ := b.state(); held != 0; held, _, _ = b.state() {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still held after the answer was collected", held)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRangeBudgetOverGRPC has clients read answers of about 1.5 MiB at once
// over a real gRPC server with a budget of two of them: every client gets
// the whole answer, byte for byte what the decoding path gives, and the
// budget is all given back once the answers are written (gRPC hands each
// buffer back through the codec): were it not, the later readers would
// wait for the collector, for ever here.
func TestRangeBudgetOverGRPC(t *testing.T) {
	saved := largeAnswers
	largeAnswers = newAnswerBudget(3<<20, time.Hour)
	defer func() { largeAnswers = saved }()

	s, be := openStore(t, filepath.Join(t.TempDir(), "db"))
	defer func() { s.Close(); be.Close() }()
	for i := range 1500 {
		err := s.Write(uint64(i+1), 1, func(tx *mvcc.TxnWrite) error {
			tx.Put(fmt.Appendf(nil, "k%05d", i), bytes.Repeat([]byte{byte(i)}, 1000), 0)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	dec := decodingKV{a: apply.New(s, nil, nil, nil)}
	req := &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")}
	want, err := dec.LocalRange(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	fillHeader(fixedHeader{s}, want.Header, true)

	srv := grpc.NewServer(grpc.ForceServerCodecV2(serverCodec))
	pb.RegisterKVServer(srv, &kvService{kv: rawKV{decodingKV: dec, s: s, calls: new(atomic.Int64)}, hdr: fixedHeader{s}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Stop()

	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Error(err)
				return
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got, err := pb.NewKVClient(cc).Range(ctx, req)
			if err != nil {
				t.Error(err)
				return
			}
			if !proto.Equal(got, want) {
				t.Errorf("answer differs from the decoding path's: %d keys, want %d", len(got.Kvs), len(want.Kvs))
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for held, inUse, _ := largeAnswers.state(); held != 0 || inUse != 0 || lentHeld.Load() != 0; held, inUse, _ = largeAnswers.state() {
		if time.Now().After(deadline) {
			t.Fatalf("budget not given back after the answers were written: held %d, in use %d, tickets %d", held, inUse, lentHeld.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRangeOverBudgetPinsRevision checks the second read of an answer that
// waited for the budget: a write that lands while it waits is not in it,
// and its header gives the revision of the first read, so the answer is,
// byte for byte, the one the decoding path gave before the write.
func TestRangeOverBudgetPinsRevision(t *testing.T) {
	saved := largeAnswers
	largeAnswers = newAnswerBudget(2<<20, time.Hour)
	defer func() { largeAnswers = saved }()
	_, raw, calls, s, _ := rangeServices(t)
	old := &kvService{kv: raw.kv.(rawKV).decodingKV, hdr: raw.hdr}
	var index uint64 = 1000
	put := func(key string, n int) {
		index++
		err := s.Write(index, 1, func(tx *mvcc.TxnWrite) error { tx.Put([]byte(key), bytes.Repeat([]byte("v"), n), 0); return nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	put("big", 1500<<10) // makes the answer count against the budget
	req := &pb.RangeRequest{Key: []byte("\x00"), RangeEnd: []byte("\x00")}
	want, err := old.Range(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	wb, _ := proto.Marshal(want)

	full, _, _ := largeAnswers.tryTake(2 << 20) // another answer fills the budget
	calls.Store(0)
	type answer struct {
		r   *pb.RangeResponse
		err error
	}
	got := make(chan answer)
	go func() {
		r, err := raw.Range(context.Background(), proto.Clone(req).(*pb.RangeRequest))
		got <- answer{r, err}
	}()
	for calls.Load() == 0 { // the first read measured the answer and found no room
		time.Sleep(time.Millisecond)
	}
	put("k05", 10) // lands between the two reads
	full.release()
	a := <-got
	if a.err != nil {
		t.Fatal(a.err)
	}
	if calls.Load() != 2 {
		t.Fatalf("answer read %d times, want 2 (measure, then read)", calls.Load())
	}
	if gb, _ := proto.Marshal(a.r); !bytes.Equal(gb, wb) {
		got := new(pb.RangeResponse)
		_ = proto.Unmarshal(gb, got)
		t.Fatalf("answer after waiting differs from the one before the write: header %v, want %v", got.Header, want.Header)
	}
}
