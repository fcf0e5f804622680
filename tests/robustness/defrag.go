package robustness

import (
	"context"
	"math/rand"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defragger defragments a random member now and then while the workload
// runs, so that the online defrag's swap is exercised under every fault:
// a history that stops being linearizable, or a hash that diverges, is
// the defrag's failure too. It is not an operation of the history.
type Defragger struct {
	mu       sync.Mutex
	ok, fail int
	longest  time.Duration
	done     chan struct{}
}

// StartDefragger runs until ctx ends, defragmenting one of eps (members'
// own client endpoints) every minGap to maxGap.
func StartDefragger(ctx context.Context, eps []string, rng *rand.Rand, minGap, maxGap time.Duration) *Defragger {
	d := &Defragger{done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for {
			gap := minGap + time.Duration(rng.Int63n(int64(maxGap-minGap)+1))
			select {
			case <-ctx.Done():
				return
			case <-time.After(gap):
			}
			d.defrag(ctx, eps[rng.Intn(len(eps))])
		}
	}()
	return d
}

func (d *Defragger) defrag(ctx context.Context, ep string) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		d.count(false, 0)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	// A member that is down, frozen or being replaced fails the call;
	// that is the fault's doing and is only counted.
	_, err = c.Defragment(ctx, ep)
	d.count(err == nil, time.Since(start))
}

func (d *Defragger) count(ok bool, took time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ok {
		d.ok++
		d.longest = max(d.longest, took)
	} else {
		d.fail++
	}
}

// Stop waits for the defragger to end (its context must be done) and
// returns how many defrags succeeded and failed, and the longest.
func (d *Defragger) Stop() (ok, fail int, longest time.Duration) {
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ok, d.fail, d.longest
}
