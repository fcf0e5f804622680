package robustness

import (
	"context"
	"fmt"
	"math/rand"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// runWorker issues requests one at a time until ctx ends.
func runWorker(ctx context.Context, id int, rng *rand.Rand, c *Client, pace time.Duration) {
	// lastModRev is the mod revision this worker last saw per key, so
	// that its txns sometimes succeed and sometimes do not.
	lastModRev := map[string]int64{}
	next := time.Now()
	for n := 0; ctx.Err() == nil; n++ {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(pace)
		key := fmt.Sprintf("key%d", rng.Intn(keyCount))
		value := fmt.Sprintf("w%d-%d", id, n) // unique, so a stale value is never mistaken for a fresh one
		var out Output
		switch r := rng.Intn(100); {
		case r < 40:
			out = c.Get(key)
			if out.Err == "" {
				lastModRev[key] = out.ModRev
			}
		case r < 70:
			out = c.Put(key, value)
		case r < 80:
			out = c.Delete(key)
		default:
			out = c.Txn(key, lastModRev[key], value)
			if out.Err == "" && !out.Succeeded {
				lastModRev[key] = out.ModRev
			}
		}
		if out.Err != "" {
			// Back off a little so an outage does not fill the history
			// with failed writes, each of which the checker must place.
			time.Sleep(100 * time.Millisecond)
		}
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

// writtenValues replays the workload keys' events from just after
// fromRev up to the current revision and returns the revision at which
// each put value was written.
func writtenValues(eps []string, fromRev int64) (map[string]int64, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "key", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, err
	}
	last := resp.Header.Revision
	written := map[string]int64{}
	if last <= fromRev {
		return written, nil
	}
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	for wr := range c.Watch(wctx, "key", clientv3.WithPrefix(), clientv3.WithRev(fromRev+1)) {
		if err := wr.Err(); err != nil {
			return nil, err
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypePut {
				written[string(ev.Kv.Value)] = ev.Kv.ModRevision
			}
			if ev.Kv.ModRevision >= last {
				return written, nil
			}
		}
	}
	return nil, fmt.Errorf("watch ended before revision %d: %v", last, ctx.Err())
}
