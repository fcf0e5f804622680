package robustness

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// workloadKeys is how many keys the workers write: key0, key1, …. Few
// keys make txn compares and reads of recent writes common.
const workloadKeys = 10

// The key range every range read and txn else branch covers: the prefix
// "key", so one read returns every workload key.
const (
	rangeStart = "key"
	rangeEnd   = "kez"
)

// compactLag is how far below the last revision it saw a worker
// compacts, at least; see Watchers.CompactBound for the other limit.
const compactLag = 20

// worker is one client's request generator and what it remembers of the
// store between requests.
type worker struct {
	id  int
	rng *rand.Rand
	c   *Client
	// compactBound, when not nil, bounds the revisions this worker may
	// compact at; without it the worker does not compact.
	compactBound func() int64

	// lastModRev is the mod revision this worker last saw per key (0 for
	// absent), so that its txn compares sometimes hold and sometimes do
	// not.
	lastModRev map[string]int64
	// lastRev is the highest response revision this worker has seen.
	lastRev int64
	n       int

	// lease is the worker's current lease (0: none), which it keeps
	// alive, attaches some of its puts to, and revokes at revokeAt.
	lease     int64
	renewedAt time.Time
	revokeAt  time.Time
}

// Leases of the workload. The model has no clock: a lease's keys may go
// only when it is revoked, so every lease is renewed far more often than
// its TTL, through faults that last seconds, and lives for several TTLs
// in long runs only because it is kept alive.
const (
	leaseTTL     = 15 // seconds
	leaseRenew   = time.Second
	leaseMinLife = 2 * time.Second
	leaseMaxLife = 30 * time.Second
)

// runWorker issues requests one at a time until ctx ends, at most one
// every pace. compactBound may be nil; see worker.
func runWorker(ctx context.Context, id int, rng *rand.Rand, c *Client, pace time.Duration, compactBound func() int64) {
	w := &worker{id: id, rng: rng, c: c, compactBound: compactBound, lastModRev: map[string]int64{}}
	next := time.Now()
	for ctx.Err() == nil {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(pace)
		if out := w.step(); out.Err != "" {
			// Back off a little so an outage does not fill the history
			// with failed writes, each of which the checker must place.
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// step issues one request. The mix is about 30% gets, 10% range reads,
// 22% puts (a third of them with the worker's lease, while it has one),
// 8% deletes, 13% single-key txns, 16% multi-op txns and 0.5%
// compactions; and, on their own clock, a lease's grant, keep-alives and
// revocation (leaseStep).
func (w *worker) step() Output {
	w.n++
	if out, ok := w.leaseStep(); ok {
		return out
	}
	key := w.key()
	value := fmt.Sprintf("w%d-%d", w.id, w.n) // unique, so a stale value is never mistaken for a fresh one
	var out Output
	switch r := w.rng.Intn(1000); {
	case r < 5 && w.compactBound != nil:
		rev := min(w.lastRev-compactLag-int64(w.rng.Intn(compactLag)), w.compactBound())
		if rev < 2 {
			return Output{}
		}
		out = w.c.Compact(rev)
	case r < 300:
		out = w.c.Get(key)
		if out.Err == "" {
			w.lastModRev[key] = out.ModRev
		}
	case r < 400:
		// A full range, or one cut short by a limit.
		var limit int64
		if w.rng.Intn(2) == 0 {
			limit = 1 + int64(w.rng.Intn(workloadKeys))
		}
		out = w.c.Range(rangeStart, rangeEnd, limit)
		w.sawRange(out, limit == 0)
	case r < 620:
		var lease int64
		if r%3 == 0 {
			lease = w.lease
		}
		out = w.c.Put(key, value, lease)
		if out.Err == "" && out.LeaseErr == "" {
			w.lastModRev[key] = out.Revision
		}
	case r < 700:
		out = w.c.Delete(key)
		if out.Err == "" {
			w.lastModRev[key] = 0
		}
	case r < 830:
		out = w.c.Txn(key, w.lastModRev[key], value)
		if out.Err == "" {
			if out.Succeeded {
				w.lastModRev[key] = out.Revision
			} else {
				w.lastModRev[key] = out.ModRev
			}
		}
	case r < 845:
		action := "list"
		if r%2 == 0 {
			action = "disarm"
		}
		out = w.c.Alarm(action)
	default:
		out = w.multiTxn(key, value)
	}
	if out.Err == "" && out.Revision > w.lastRev {
		w.lastRev = out.Revision
	}
	return out
}

// leaseStep grants a lease when the worker has none, renews it every
// leaseRenew and revokes it at the end of its life, and says whether it
// issued a request. A lease whose revocation or renewal failed or was
// refused is given up: a new one is granted next.
func (w *worker) leaseStep() (Output, bool) {
	now := time.Now()
	var out Output
	switch {
	case w.lease == 0:
		if out = w.c.Grant(leaseTTL); out.Err == "" {
			w.lease, w.renewedAt = out.LeaseID, now
			w.revokeAt = now.Add(leaseMinLife + time.Duration(w.rng.Int63n(int64(leaseMaxLife-leaseMinLife))))
		}
	case now.After(w.revokeAt):
		out = w.c.Revoke(w.lease)
		w.lease = 0
	case now.Sub(w.renewedAt) >= leaseRenew:
		if out = w.c.KeepAlive(w.lease); out.Err == "" && out.Succeeded {
			w.renewedAt = now
		} else if out.Err == "" {
			w.lease = 0
		}
	default:
		return Output{}, false
	}
	return out, true
}

func (w *worker) key() string { return fmt.Sprintf("key%d", w.rng.Intn(workloadKeys)) }

// multiTxn compares the mod revisions of two keys with what this worker
// last saw of them; if both hold it puts the first and puts or deletes
// the second, at one revision, and otherwise it reads every key. The
// keys differ, as etcd refuses a txn that writes one key twice, and the
// then branch always puts, so the event log can tell whether it was
// applied (see prepare).
func (w *worker) multiTxn(a, value string) Output {
	b := a
	for b == a {
		b = w.key()
	}
	cmps := []Cmp{{Key: a, ModRev: w.lastModRev[a]}, {Key: b, ModRev: w.lastModRev[b]}}
	then := []TxnOp{{Kind: OpPut, Key: a, Value: value + "a"}}
	if w.rng.Intn(2) == 0 {
		then = append(then, TxnOp{Kind: OpPut, Key: b, Value: value + "b"})
	} else {
		then = append(then, TxnOp{Kind: OpDelete, Key: b})
	}
	out := w.c.MultiTxn(cmps, then, rangeStart, rangeEnd)
	switch {
	case out.Err != "":
	case out.Succeeded:
		for _, op := range then {
			if op.Kind == OpPut {
				w.lastModRev[op.Key] = out.Revision
			} else {
				w.lastModRev[op.Key] = 0
			}
		}
	default:
		w.sawRange(out, true)
	}
	return out
}

// sawRange remembers the mod revisions a successful range read returned;
// a read of every key also tells which keys are absent.
func (w *worker) sawRange(out Output, all bool) {
	if out.Err != "" {
		return
	}
	if all {
		clear(w.lastModRev)
	}
	for _, kv := range out.KVs {
		w.lastModRev[kv.Key] = kv.ModRev
	}
}

func (r *Recorder) counts() (recorded, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, op := range r.ops {
		if op.Output.(Output).Err != "" {
			failed++
		}
	}
	return len(r.ops), failed
}

// Summary describes a prepared history for the test's log: per kind of
// request how many were checked and how many of those had failed on the
// client, how many txns took their then branch, how many compactions
// the server refused, and how many failed writes the event log could
// not settle (left open to the end of the history).
func Summary(ops []porcupine.Operation) string {
	type tally struct{ checked, failed, succeeded, refused int }
	counts := map[OpKind]*tally{}
	open := 0
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		c := counts[in.Kind]
		if c == nil {
			c = &tally{}
			counts[in.Kind] = c
		}
		c.checked++
		switch {
		case out.Err != "":
			c.failed++
		case out.Succeeded:
			c.succeeded++
		case out.CompactErr != "":
			c.refused++
		}
		if op.Return == math.MaxInt64 {
			open++
		}
	}
	var b strings.Builder
	for _, k := range []OpKind{OpGet, OpRange, OpPut, OpDelete, OpTxn, OpMultiTxn, OpCompact, OpGrant, OpKeepAlive, OpRevoke, OpAlarm} {
		c := counts[k]
		if c == nil {
			continue
		}
		fmt.Fprintf(&b, "%s %d (%d failed", k, c.checked, c.failed)
		switch k {
		case OpTxn, OpMultiTxn:
			fmt.Fprintf(&b, ", %d then", c.succeeded)
		case OpCompact:
			fmt.Fprintf(&b, ", %d refused", c.refused)
		}
		b.WriteString("), ")
	}
	fmt.Fprintf(&b, "%d failed writes left open", open)
	return b.String()
}
