package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvd-io/kvd/pkg/client"
)

// mirrorPageSize is how many keys one read of the initial copy takes.
const mirrorPageSize = 1000

// Pacing of the retries while either side is unreachable.
const (
	mirrorFirstRetry = 50 * time.Millisecond
	mirrorMaxRetry   = 2 * time.Second
)

// mirror copies the keys under prefix from src to dst, renamed under
// destPrefix, then applies src's changes to dst revision by revision.
//
// It remembers how far the destination has got in the source's history
// (pos), so that when either side goes away it waits, and then goes on
// from exactly there: a source watch lost for good is opened again at
// pos, and a destination write whose outcome is unknown is repeated only
// if it did not apply (see commit).
type mirror struct {
	src      client.KV
	srcWatch client.Watcher
	dst      client.KV

	prefix, destPrefix string
	maxOps             int
	callTimeout        time.Duration
	log                *slog.Logger

	total atomic.Int64 // keys copied and changes applied, for the count printed

	// pos is the first source revision not wholly applied, and how many
	// of its events were (a revision with more than maxOps changes takes
	// several transactions).
	pos struct {
		rev    int64
		events int
	}
	// destRev is the destination's revision after the mirror's last write
	// or read there.
	destRev int64
}

func (m *mirror) run(ctx context.Context, rev int64) error {
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if err := m.readDestRev(ctx); err != nil {
		return err
	}
	// As etcdctl: --rev N follows the changes from N on without a copy
	// (so does --rev 1, which amounts to no --rev at all).
	if rev > 1 {
		m.pos.rev = rev
	} else {
		base, err := m.copyBase(ctx)
		if err != nil {
			return err
		}
		m.pos.rev = base + 1
	}
	return m.follow(ctx)
}

func (m *mirror) destKey(key []byte) string {
	return m.destPrefix + string(key[len(m.prefix):])
}

// readDestRev learns the destination's current revision.
func (m *mirror) readDestRev(ctx context.Context) error {
	return m.retry(ctx, "read the destination's revision", func(ctx context.Context) error {
		resp, err := m.dst.Get(ctx, "foo", client.WithCountOnly())
		if err == nil {
			m.destRev = resp.Header.Revision
		}
		return err
	})
}

// copyBase copies the keys as of one revision of the source, which it
// returns, page by page in key order, one put per key as etcdctl does.
func (m *mirror) copyBase(ctx context.Context) (int64, error) {
	probe := m.prefix
	if probe == "" {
		probe = "foo"
	}
	var rev int64
	err := m.retry(ctx, "read the source's revision", func(ctx context.Context) error {
		resp, err := m.src.Get(ctx, probe, client.WithCountOnly())
		if err == nil {
			rev = resp.Header.Revision
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	key, end := m.prefix, client.WithPrefix()
	for {
		var page *client.GetResponse
		err := m.retry(ctx, "read the source", func(ctx context.Context) error {
			var err error
			page, err = m.src.Get(ctx, key, end, client.WithRev(rev), client.WithLimit(mirrorPageSize),
				client.WithSort(client.SortByKey, client.SortAscend))
			return err
		})
		if err != nil {
			return 0, err
		}
		for _, kv := range page.Kvs {
			k := m.destKey(kv.Key)
			if err := m.commit(ctx, []client.Op{client.OpPut(k, string(kv.Value))}, k); err != nil {
				return 0, err
			}
			m.total.Add(1)
		}
		if !page.More || len(page.Kvs) == 0 {
			return rev, nil
		}
		// The next page starts just after the last key read, and still
		// ends where the prefix does.
		last := page.Kvs[len(page.Kvs)-1].Key
		key = string(last) + "\x00"
		end = client.WithRange(client.GetPrefixRangeEnd(m.prefix))
	}
}

// follow applies the source's changes from pos on, watching again from pos
// whenever the watch ends for another reason than compaction.
func (m *mirror) follow(ctx context.Context) error {
	delay := mirrorFirstRetry
	for {
		err := m.followOnce(ctx)
		if errors.Is(err, rpctypes.ErrCompacted) || ctx.Err() != nil {
			return err
		}
		if err != nil && !errors.Is(err, errWatchClosed) && !transient(err) {
			return err
		}
		m.log.Debug("source watch ended; watching again", "from", m.pos.rev, "err", err)
		if !sleepFor(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, mirrorMaxRetry)
	}
}

// followOnce runs one watch of the source from pos until it ends.
func (m *mirror) followOnce(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	skipRev, skip := m.pos.rev, m.pos.events
	wch := m.srcWatch.Watch(wctx, m.prefix, client.WithPrefix(), client.WithRev(m.pos.rev))
	b := &mirrorBatch{}
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return rpctypes.ErrCompacted
		}
		if err := resp.Err(); err != nil {
			return err
		}
		for _, ev := range resp.Events {
			rev := ev.Kv.ModRevision
			if rev == skipRev && skip > 0 {
				skip-- // applied before the watch was opened again
				continue
			}
			if b.n > 0 && (rev != b.rev || b.n == m.maxOps) {
				if err := m.flush(ctx, b); err != nil {
					return err
				}
			}
			b.add(m, ev)
			m.total.Add(1)
		}
		if err := m.flush(ctx, b); err != nil {
			return err
		}
	}
	return errWatchClosed
}

// errWatchClosed is a source watch that ended without saying why: it is
// opened again.
var errWatchClosed = errors.New("source watch closed")

// mirrorBatch is the changes of one source revision (or part of one)
// waiting to go to the destination in one transaction.
type mirrorBatch struct {
	rev   int64
	n     int
	ops   []client.Op
	guard string // a key the batch puts, for commit's check
}

func (b *mirrorBatch) add(m *mirror, ev *mvccpb.Event) {
	if b.n == 0 || b.rev != ev.Kv.ModRevision {
		b.rev = ev.Kv.ModRevision
	}
	k := m.destKey(ev.Kv.Key)
	if ev.Type == mvccpb.DELETE {
		b.ops = append(b.ops, client.OpDelete(k))
	} else {
		b.ops = append(b.ops, client.OpPut(k, string(ev.Kv.Value)))
		if b.guard == "" {
			b.guard = k
		}
	}
	b.n++
}

// flush commits the batch and moves pos past it.
func (m *mirror) flush(ctx context.Context, b *mirrorBatch) error {
	if b.n == 0 {
		return nil
	}
	if err := m.commit(ctx, b.ops, b.guard); err != nil {
		return err
	}
	if m.pos.rev != b.rev {
		m.pos.rev, m.pos.events = b.rev, 0
	}
	m.pos.events += b.n
	*b = mirrorBatch{}
	return nil
}

// commit writes ops to the destination in one transaction, repeating it
// while the destination is unreachable. A repeat after a failure whose
// outcome is unknown first checks that the first attempt did not apply:
// if it did, guard (a key the transaction puts) was written after the
// destination's last known revision. A transaction of deletes alone can
// simply be repeated.
func (m *mirror) commit(ctx context.Context, ops []client.Op, guard string) error {
	var cmps []client.Cmp
	return m.retry(ctx, "write to the destination", func(ctx context.Context) error {
		resp, err := m.dst.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			if guard != "" {
				cmps = []client.Cmp{client.Compare(client.ModRevision(guard), "<", m.destRev+1)}
			}
			return err
		}
		m.destRev = resp.Header.Revision
		return nil
	})
}

// retry runs call, each time within the command's timeout, until it
// succeeds, fails for good, or ctx ends.
func (m *mirror) retry(ctx context.Context, what string, call func(context.Context) error) error {
	delay := mirrorFirstRetry
	for {
		cctx, cancel := context.WithTimeout(ctx, m.callTimeout)
		err := call(cctx)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		m.log.Debug("mirror: retrying", "what", what, "after", delay, "err", err)
		if !sleepFor(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, mirrorMaxRetry)
	}
}

// transient says a failure may pass: the server is unreachable, has no
// leader for now, or did not answer in time.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

func sleepFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
