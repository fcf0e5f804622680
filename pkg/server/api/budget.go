package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// answerBudget bounds the bytes of large encoded answers the member holds
// at once. Ten clients each reading 100 MB at the same moment otherwise
// make the member hold a gigabyte, although the connections can only carry
// those answers out a few at a time: a reader over budget waits for an
// earlier answer to be written out before its own is built.
//
// The buffer of an answer written out is kept for the next large answer
// while any is being built or sent: left to the garbage collector, it would
// only be reused after the next collection, which a heap of a few large
// answers does not reach before it has grown by as much again. Once no
// large answer is in flight the spares are dropped (and memtrim returns
// them to the OS).
//
// A reader waits at most patience and then goes ahead over budget, so a
// client too slow to take its answer delays others' large reads by that
// much but never stops them.
type answerBudget struct {
	size     int64
	patience time.Duration

	mu     sync.Mutex
	held   int64    // bytes of answers in flight and of spares
	inUse  int      // answers in flight
	spares [][]byte // buffers of answers written out, empty
	wake   chan struct{}
}

const (
	// budgetBytes holds four or five answers of 100 MB.
	budgetBytes = 512 << 20
	// budgetPatience is long enough for the connections to write out a
	// budget's worth of answers on a small machine.
	budgetPatience = 5 * time.Second
	// budgetMin is the size below which answers do not count: they
	// never add up to much.
	budgetMin = 1 << 20
)

// largeAnswers is the process's budget: memory is the process's, however
// many servers it runs.
var largeAnswers = newAnswerBudget(budgetBytes, budgetPatience)

func newAnswerBudget(size int64, patience time.Duration) *answerBudget {
	return &answerBudget{size: size, patience: patience, wake: make(chan struct{})}
}

// budgetTicket is an answer's share of the budget: the capacity of its
// buffer. As a mem.BufferPool it is handed the buffer back when gRPC has
// written it. It holds no reference to the buffer, or the collector could
// never find the buffer unreachable (see holdBudget).
type budgetTicket struct {
	b    *answerBudget
	n    int64
	done atomic.Bool
}

// giveBack ends the ticket: buf, if not nil, may serve another answer.
func (t *budgetTicket) giveBack(buf []byte) {
	if t == nil || !t.done.CompareAndSwap(false, true) {
		return
	}
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inUse--
	if buf != nil && b.inUse > 0 {
		b.spares = append(b.spares, buf[:0])
	} else {
		b.held -= t.n
	}
	if b.inUse == 0 {
		for _, s := range b.spares {
			b.held -= int64(cap(s))
		}
		b.spares = nil
	}
	close(b.wake)
	b.wake = make(chan struct{})
}

func (t *budgetTicket) release() { t.giveBack(nil) }

// Get is never called: the ticket only takes its buffer back.
func (t *budgetTicket) Get(n int) *[]byte { b := make([]byte, n); return &b }

// Put is gRPC done with the answer.
func (t *budgetTicket) Put(p *[]byte) { t.giveBack((*p)[:cap(*p)]) }

// tryTake returns a ticket and an empty buffer of at least n bytes if the
// budget has them, or, for an answer too small to count, a nil ticket and
// no buffer.
func (b *answerBudget) tryTake(n int) (t *budgetTicket, buf []byte, ok bool) {
	if b == nil || n < budgetMin {
		return nil, nil, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, s := range b.spares {
		if cap(s) >= n {
			b.spares = append(b.spares[:i], b.spares[i+1:]...)
			b.inUse++
			return &budgetTicket{b: b, n: int64(cap(s))}, s, true
		}
	}
	// Spares too small for this answer give way to it.
	for len(b.spares) > 0 && b.held+int64(n) > b.size {
		b.held -= int64(cap(b.spares[0]))
		b.spares = b.spares[1:]
	}
	// An answer bigger than the whole budget goes alone.
	if b.held > 0 && b.held+int64(n) > b.size {
		return nil, nil, false
	}
	b.held += int64(n)
	b.inUse++
	return &budgetTicket{b: b, n: int64(n)}, make([]byte, 0, n), true
}

// take waits for a ticket for n bytes, at most patience: after that it
// returns a nil ticket, and the answer goes ahead over budget.
func (b *answerBudget) take(ctx context.Context, n int) (*budgetTicket, []byte, error) {
	timeout := time.NewTimer(b.patience)
	defer timeout.Stop()
	for {
		b.mu.Lock()
		wake := b.wake
		b.mu.Unlock()
		if t, buf, ok := b.tryTake(n); ok {
			return t, buf, nil
		}
		select {
		case <-wake:
		case <-timeout.C:
			return nil, nil, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// holdBudget ties t to buf, the encoded answer: passThroughCodec hands the
// buffer to gRPC with t as its pool, and if buf becomes garbage without
// that, the collector gives the bytes back.
func holdBudget(buf []byte, t *budgetTicket) {
	if t == nil {
		return
	}
	lend(buf, t, t.release) // release is a no-op once gRPC gave buf back
}
