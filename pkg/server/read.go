package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// readLoop serves linearizable reads in batches: every read that arrives
// while a ReadIndex round is in flight waits for the next round, so one
// round trip to the leader serves all of them.
type readLoop struct {
	s     *Server
	mu    sync.Mutex
	next  *readBatch
	wakec chan struct{}
}

type readBatch struct {
	done chan struct{}
	err  error
}

func newReadLoop(s *Server) *readLoop {
	return &readLoop{s: s, next: &readBatch{done: make(chan struct{})}, wakec: make(chan struct{}, 1)}
}

// wait returns once the local state machine has applied everything that
// was committed when wait was called, or at least every write a client
// could have seen acknowledged by then (see soleVoterCaughtUp).
func (l *readLoop) wait(ctx context.Context) error {
	if l.s.soleVoterCaughtUp() {
		return nil
	}
	l.mu.Lock()
	b := l.next
	l.mu.Unlock()
	select {
	case l.wakec <- struct{}{}:
	default:
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	case <-l.s.stopc:
		return errStopped
	}
}

// soleVoterCaughtUp says whether a barrier may skip the ReadIndex
// round: this member is the only voter, leads, and has applied
// the first entry of its term, so everything committed before, the WAL
// replayed after a restart included, is applied. No other member can then
// lead or acknowledge a write, and this one acknowledges a write only
// once it has applied it, so the local state holds every write a client
// can know of. Leadership is checked for a voter being added too: once
// this member votes for it, it has stopped leading.
func (s *Server) soleVoterCaughtUp() bool {
	return s.cluster.LocalIsSoleVoter() && s.isLeader() && s.leadingApplied.Load() == s.node.Term()
}

func (l *readLoop) run(stopc <-chan struct{}) {
	for {
		select {
		case <-l.wakec:
		case <-stopc:
			l.mu.Lock()
			l.next.err = errStopped
			close(l.next.done)
			l.mu.Unlock()
			return
		}
		l.mu.Lock()
		b := l.next
		l.next = &readBatch{done: make(chan struct{})}
		l.mu.Unlock()
		b.err = l.round(stopc)
		if b.err != nil && b.err != errStopped {
			l.s.metrics.ReadIndexFailed()
		}
		close(b.done)
	}
}

// readRetry is how long a ReadIndex request waits for its answer before it
// is sent again; raft drops such requests silently while, for example, a
// new leader has not yet committed an entry of its term.
const readRetry = 250 * time.Millisecond

func (l *readLoop) round(stopc <-chan struct{}) error {
	s := l.s
	ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout())
	defer cancel()
	rctx := make([]byte, 8)
	binary.BigEndian.PutUint64(rctx, s.ids.id())
	index, err := l.readIndex(ctx, rctx, stopc)
	if err != nil {
		return err
	}
	return s.applied.wait(ctx, index, stopc)
}

func (l *readLoop) readIndex(ctx context.Context, rctx []byte, stopc <-chan struct{}) (uint64, error) {
	s := l.s
	retry := time.NewTimer(0)
	defer retry.Stop()
	start := time.Now()
	for {
		select {
		case <-retry.C:
			// Without a leader for a whole election timeout, none is
			// coming soon: fail now rather than at the request timeout.
			if s.node.Leader() == 0 && time.Since(start) > s.cfg.ElectionTimeout {
				return 0, rpctypes.ErrGRPCNoLeader
			}
			if err := s.node.ReadIndex(ctx, rctx); err != nil {
				return 0, s.proposeError(ctx, err)
			}
			retry.Reset(readRetry)
		case <-s.node.NewLeader():
			// Raft drops a ReadIndex while no leader is known: the
			// one sent before was lost, most likely.
			retry.Reset(0)
		case rs := <-s.node.ReadStates():
			if bytes.Equal(rs.RequestCtx, rctx) {
				return rs.Index, nil
			}
		case <-ctx.Done():
			if s.node.Leader() == 0 {
				return 0, rpctypes.ErrGRPCNoLeader
			}
			return 0, rpctypes.ErrGRPCTimeout
		case <-stopc:
			return 0, errStopped
		}
	}
}

// appliedIndex is the index of the last entry the state machine applied,
// with waiters for it to reach a given index.
type appliedIndex struct {
	mu      sync.Mutex
	index   uint64
	waiters []appliedWaiter
}

type appliedWaiter struct {
	index uint64
	ch    chan struct{}
}

func (a *appliedIndex) get() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.index
}

func (a *appliedIndex) set(i uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.index = i
	kept := a.waiters[:0]
	for _, w := range a.waiters {
		if w.index <= i {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	a.waiters = kept
}

func (a *appliedIndex) wait(ctx context.Context, i uint64, stopc <-chan struct{}) error {
	a.mu.Lock()
	if a.index >= i {
		a.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	a.waiters = append(a.waiters, appliedWaiter{index: i, ch: ch})
	a.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return rpctypes.ErrGRPCTimeout
	case <-stopc:
		return errStopped
	}
}
