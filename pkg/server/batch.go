package server

import (
	"context"
	"sync"
	"time"
)

// batchProposer is what the batcher needs of raft: a way to hand several
// proposals over in one go, learning how many of them raft took (the
// first n) and why it refused the rest.
type batchProposer interface {
	ProposeBatch(ctx context.Context, data [][]byte) (n int, err error)
}

// Bounds of one batch. The byte bound keeps a batch that a follower
// forwards to the leader, and the leader's append message that carries it
// on, near raft's MaxSizePerMsg; a single proposal larger than that still
// goes alone.
const (
	maxBatchCount = 256
	maxBatchBytes = 1 << 20
)

// batcher hands proposals to raft as group commit does: a proposal that
// finds no hand-off in progress goes at once, on its caller's goroutine,
// so a lone request waits for nobody; proposals that arrive while a
// hand-off is under way queue, and the batcher's goroutine hands each
// queue over in one message as soon as the hand-off before it returns.
// Under load raft's step and its log append then see one message per
// batch instead of one per request.
type batcher struct {
	node    batchProposer
	timeout time.Duration // how long a queued batch may wait for raft
	// onBatch, when set, is told the size of each hand-off from the queue.
	onBatch func(n int)

	mu      sync.Mutex
	queue   []*proposal
	busy    bool // a hand-off runs, and whoever runs it drains the queue
	stopped bool
	kick    chan struct{}
}

// proposal is one queued request. errc gets the reason it failed to reach
// raft; a proposal that reached raft hears nothing here, its outcome comes
// through the wait registry like any other.
type proposal struct {
	data []byte
	errc chan error
}

func newBatcher(node batchProposer, timeout time.Duration) *batcher {
	return &batcher{node: node, timeout: timeout, kick: make(chan struct{}, 1)}
}

// submit hands data to raft or queues it. With nothing in progress it goes
// now under ctx and the error is raft's answer, with a nil proposal;
// otherwise the returned proposal's errc reports a failed hand-off.
func (b *batcher) submit(ctx context.Context, data []byte) (*proposal, error) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return nil, errStopped
	}
	if b.busy {
		p := &proposal{data: data, errc: make(chan error, 1)}
		b.queue = append(b.queue, p)
		b.mu.Unlock()
		return p, nil
	}
	b.busy = true
	b.mu.Unlock()
	_, err := b.node.ProposeBatch(ctx, [][]byte{data})
	b.mu.Lock()
	if len(b.queue) == 0 || b.stopped {
		b.busy = false
		b.mu.Unlock()
		return nil, err
	}
	b.mu.Unlock()
	// The queue that formed meanwhile is the batcher goroutine's to hand
	// over; this caller goes back to waiting for its own result.
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return nil, err
}

// withdraw takes p out of the queue if it is still there, for a caller
// that gives up waiting. Once a batch holds it, it may still reach raft.
func (b *batcher) withdraw(p *proposal) {
	if p == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, q := range b.queue {
		if q == p {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			return
		}
	}
}

// run hands queued batches to raft until stopc closes, then fails what is
// still queued with errStopped. A hand-off in progress then ends too, as
// its context is canceled.
func (b *batcher) run(stopc <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-stopc:
			cancel()
		case <-stopped:
		}
	}()
	var data [][]byte
	for {
		select {
		case <-stopc:
			b.stop()
			return
		case <-b.kick:
		}
		for {
			select {
			case <-stopc:
				b.stop()
				return
			default:
			}
			batch := b.take()
			if batch == nil {
				break
			}
			data = b.handOff(ctx, batch, data[:0])
		}
	}
}

// take removes the next batch from the queue, bounded in count and bytes,
// or, when the queue is empty, ends the busy spell so that the next
// proposal goes at once.
func (b *batcher) take() []*proposal {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 || b.stopped {
		b.busy = false
		return nil
	}
	n, size := 0, 0
	for n < len(b.queue) && n < maxBatchCount {
		size += len(b.queue[n].data)
		if n > 0 && size > maxBatchBytes {
			break
		}
		n++
	}
	batch := make([]*proposal, n)
	copy(batch, b.queue)
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	return batch
}

// handOff gives one batch to raft and tells the proposals it refused why.
// data is scratch space for the payloads, returned for the next batch.
func (b *batcher) handOff(ctx context.Context, batch []*proposal, data [][]byte) [][]byte {
	for _, p := range batch {
		data = append(data, p.data)
	}
	hctx, cancel := context.WithTimeout(ctx, b.timeout)
	n, err := b.node.ProposeBatch(hctx, data)
	cancel()
	if b.onBatch != nil {
		b.onBatch(len(data))
	}
	if ctx.Err() != nil {
		// Only stopping cancels ctx: say so rather than "canceled".
		err = errStopped
	}
	for _, p := range batch[n:] {
		p.errc <- err
	}
	clear(data)
	return data
}

// stop refuses further proposals and fails the queued ones.
func (b *batcher) stop() {
	b.mu.Lock()
	b.stopped = true
	queue := b.queue
	b.queue = nil
	b.mu.Unlock()
	for _, p := range queue {
		p.errc <- errStopped
	}
}
