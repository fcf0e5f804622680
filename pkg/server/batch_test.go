package server

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeRaft records each hand-off. While hold is set a hand-off waits for a
// value on release (or its context), so tests can make proposals queue.
type fakeRaft struct {
	mu      sync.Mutex
	calls   [][]string
	hold    bool
	entered chan struct{}
	release chan struct{}
	// answer decides a hand-off's outcome; nil accepts all.
	answer func(data [][]byte) (int, error)
}

func newFakeRaft() *fakeRaft {
	return &fakeRaft{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (f *fakeRaft) ProposeBatch(ctx context.Context, data [][]byte) (int, error) {
	f.mu.Lock()
	call := make([]string, len(data))
	for i, d := range data {
		call[i] = string(d)
	}
	f.calls = append(f.calls, call)
	hold, answer := f.hold, f.answer
	f.mu.Unlock()
	if hold {
		select {
		case f.entered <- struct{}{}:
		case <-time.After(testWait):
			return 0, errors.New("fake raft: hand-off nobody waited for")
		}
		select {
		case <-f.release:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(testWait):
			return 0, errors.New("fake raft: never let go")
		}
	}
	if answer != nil {
		return answer(data)
	}
	return len(data), nil
}

func (f *fakeRaft) setHold(hold bool) {
	f.mu.Lock()
	f.hold = hold
	f.mu.Unlock()
}

func (f *fakeRaft) callsSoFar() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// testWait bounds every wait in these tests, so that a broken batcher
// fails them rather than hanging them; nothing here is timed.
const testWait = 10 * time.Second

func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(testWait):
		t.Fatalf("no %s after %v", what, testWait)
	}
	var zero T
	return zero
}

func (f *fakeRaft) letGo(t *testing.T) {
	t.Helper()
	select {
	case f.release <- struct{}{}:
	case <-time.After(testWait):
		t.Fatalf("no hand-off waiting to be let go after %v", testWait)
	}
}

// until polls cond, letting other goroutines run, until it holds.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after %v", what, testWait)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// startBatcher runs b's goroutine until the test ends.
func startBatcher(t *testing.T, b *batcher) chan struct{} {
	stopc := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); b.run(stopc) }()
	t.Cleanup(func() {
		select {
		case <-stopc:
		default:
			close(stopc)
		}
		<-done
	})
	return stopc
}

// TestBatcherSingleGoesAtOnce: with nothing in flight a proposal is handed
// to raft by its caller before submit returns, alone, and raft's refusal
// comes back to that caller directly.
func TestBatcherSingleGoesAtOnce(t *testing.T) {
	f := newFakeRaft()
	b := newBatcher(f, time.Minute)
	// No batcher goroutine runs: a lone proposal must not need it.
	for i := range 3 {
		p, err := b.submit(context.Background(), []byte(fmt.Sprint(i)))
		if p != nil || err != nil {
			t.Fatalf("submit %d = %v, %v; want handed over at once", i, p, err)
		}
	}
	if got, want := f.callsSoFar(), [][]string{{"0"}, {"1"}, {"2"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("hand-offs %v, want %v", got, want)
	}
	dropped := errors.New("dropped")
	f.answer = func([][]byte) (int, error) { return 0, dropped }
	if _, err := b.submit(context.Background(), []byte("x")); !errors.Is(err, dropped) {
		t.Fatalf("refused proposal: err %v, want %v", err, dropped)
	}
}

// TestBatcherFormsBatch: proposals that arrive while a hand-off is in
// progress go to raft together, in arrival order, in one hand-off; each
// one raft refused hears why, the accepted ones hear nothing.
func TestBatcherFormsBatch(t *testing.T) {
	f := newFakeRaft()
	b := newBatcher(f, time.Minute)
	startBatcher(t, b)

	f.setHold(true)
	firstDone := make(chan error, 1)
	go func() {
		_, err := b.submit(context.Background(), []byte("first"))
		firstDone <- err
	}()
	recv(t, f.entered, "hand-off")
	const n = 10
	ps := make([]*proposal, n)
	for i := range n {
		p, err := b.submit(context.Background(), []byte(fmt.Sprint(i)))
		if err != nil || p == nil {
			t.Fatalf("submit %d during a hand-off = %v, %v; want queued", i, p, err)
		}
		ps[i] = p
	}
	refused := errors.New("refused")
	f.mu.Lock()
	f.hold = false
	f.answer = func(data [][]byte) (int, error) {
		if len(data) == n {
			return 6, refused // raft took the first six
		}
		return len(data), nil
	}
	f.mu.Unlock()
	f.letGo(t)
	if err := recv(t, firstDone, "return of the first submit"); err != nil {
		t.Fatal(err)
	}
	for i := 6; i < n; i++ {
		if err := recv(t, ps[i].errc, "refusal"); !errors.Is(err, refused) {
			t.Fatalf("proposal %d: err %v, want %v", i, err, refused)
		}
	}
	for i := range 6 {
		select {
		case err := <-ps[i].errc:
			t.Fatalf("accepted proposal %d told %v", i, err)
		default:
		}
	}
	want := [][]string{{"first"}, {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}}
	if got := f.callsSoFar(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("hand-offs %v, want %v", got, want)
	}
	// The queue drained, the next proposal goes at once again.
	until(t, "idle", func() bool { return !b.isBusy() })
	if p, err := b.submit(context.Background(), []byte("after")); p != nil || err != nil {
		t.Fatalf("submit after the batch = %v, %v; want handed over at once", p, err)
	}
}

func (b *batcher) isBusy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.busy
}

// TestBatcherBounds: a batch holds at most maxBatchCount proposals and
// maxBatchBytes of them, except that one larger proposal goes alone.
func TestBatcherBounds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int
		want  []int // proposals per hand-off after the first
	}{
		{"count", slices.Repeat([]int{10}, maxBatchCount+5), []int{maxBatchCount, 5}},
		{"bytes", slices.Repeat([]int{maxBatchBytes / 3}, 7), []int{3, 3, 1}},
		{"oversized alone", []int{10, maxBatchBytes + 1, 10}, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRaft()
			b := newBatcher(f, time.Minute)
			f.setHold(true)
			go func() { _, _ = b.submit(context.Background(), []byte("first")) }()
			recv(t, f.entered, "hand-off")
			for _, size := range tc.sizes {
				if _, err := b.submit(context.Background(), make([]byte, size)); err != nil {
					t.Fatal(err)
				}
			}
			f.setHold(false)
			f.letGo(t)
			startBatcher(t, b)
			until(t, "all handed over", func() bool { return len(f.callsSoFar()) >= 1+len(tc.want) })
			var got []int
			for _, c := range f.callsSoFar()[1:] {
				got = append(got, len(c))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("batch sizes %v, want %v", got, tc.want)
			}
		})
	}
}

// TestBatcherStop: stopping fails every queued proposal with errStopped,
// ends a hand-off still waiting for raft, and refuses new proposals.
func TestBatcherStop(t *testing.T) {
	f := newFakeRaft()
	b := newBatcher(f, time.Minute)
	stopc := startBatcher(t, b)

	// A batch that raft keeps waiting, and proposals queued behind it.
	f.setHold(true)
	go func() { _, _ = b.submit(context.Background(), []byte("first")) }()
	recv(t, f.entered, "hand-off")
	var ps []*proposal
	for i := range 3 {
		p, _ := b.submit(context.Background(), []byte(fmt.Sprint(i)))
		ps = append(ps, p)
	}
	f.letGo(t)
	recv(t, f.entered, "hand-off of the queue") // the batcher goroutine now waits on raft with 0..2
	for i := range 2 {
		p, _ := b.submit(context.Background(), []byte(fmt.Sprint("late", i)))
		ps = append(ps, p)
	}
	close(stopc)
	for i, p := range ps {
		if err := recv(t, p.errc, "failure on stop"); !errors.Is(err, errStopped) {
			t.Fatalf("proposal %d: err %v, want %v", i, err, errStopped)
		}
	}
	if _, err := b.submit(context.Background(), []byte("after")); !errors.Is(err, errStopped) {
		t.Fatalf("submit after stop: err %v, want %v", err, errStopped)
	}
}

// TestBatcherWithdraw: a caller that gives up while its proposal still
// queues takes it out: raft never sees it.
func TestBatcherWithdraw(t *testing.T) {
	f := newFakeRaft()
	b := newBatcher(f, time.Minute)
	startBatcher(t, b)
	f.setHold(true)
	done := make(chan struct{})
	go func() { defer close(done); _, _ = b.submit(context.Background(), []byte("first")) }()
	recv(t, f.entered, "hand-off")
	keep, _ := b.submit(context.Background(), []byte("keep"))
	gone, _ := b.submit(context.Background(), []byte("gone"))
	b.withdraw(gone)
	f.setHold(false)
	f.letGo(t)
	recv(t, done, "return of the first submit")
	until(t, "the queue handed over", func() bool { return len(f.callsSoFar()) >= 2 })
	if got, want := f.callsSoFar(), [][]string{{"first"}, {"keep"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("hand-offs %v, want %v", got, want)
	}
	select {
	case err := <-keep.errc:
		t.Fatalf("the proposal that stayed was told %v", err)
	default:
	}
}
