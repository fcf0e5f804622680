package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// loadStats is what a client doing steady work saw.
type loadStats struct {
	ops     atomic.Int64
	longest atomic.Int64 // nanoseconds
	mu      sync.Mutex
	errs    []error
}

func (s *loadStats) record(start time.Time, err error) {
	if err != nil {
		s.mu.Lock()
		s.errs = append(s.errs, err)
		s.mu.Unlock()
		return
	}
	s.ops.Add(1)
	d := int64(time.Since(start))
	for old := s.longest.Load(); d > old && !s.longest.CompareAndSwap(old, d); old = s.longest.Load() {
	}
}

// steadyLoad runs a writer and a reader against c until stop is closed.
func steadyLoad(c *clientv3.Client, stop <-chan struct{}, writes, reads *loadStats) *sync.WaitGroup {
	var wg sync.WaitGroup
	framework.Repeat(&wg, stop, func(i int) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Put(ctx, fmt.Sprintf("/load/%06d", i), strings.Repeat("w", 100))
		writes.record(start, err)
		return true
	})
	framework.Repeat(&wg, stop, func(i int) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Get(ctx, fmt.Sprintf("/fill/%05d", i%4000), clientv3.WithPrefix(), clientv3.WithLimit(10))
		reads.record(start, err)
		return true
	})
	return &wg
}

// fillAndThin writes n keys of size bytes twice over, deletes every
// other one, compacts to the revision before the last, and returns the
// last revision.
func fillAndThin(ctx context.Context, t *testing.T, c *clientv3.Client, n, size int) int64 {
	t.Helper()
	val := strings.Repeat("x", size)
	const workers = 8
	var wg sync.WaitGroup
	var last atomic.Int64
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 3 {
				for i := w; i < n; i += workers {
					key := fmt.Sprintf("/fill/%05d", i)
					var err error
					if round < 2 {
						_, err = c.Put(ctx, key, fmt.Sprint(round, val))
					} else if i%2 == 1 {
						var resp *clientv3.DeleteResponse
						if resp, err = c.Delete(ctx, key); err == nil {
							last.Store(max(last.Load(), resp.Header.Revision))
						}
					}
					if err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Compacted one short of the last revision: HashKV at a compaction's
	// own revision answers the hash that compaction made, which a restart
	// forgets (as etcd's does), so the tests hash at the revision after.
	rev := last.Load()
	if _, err := c.Compact(ctx, rev-1, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	return rev
}

// TestDefragUnderLoad defragments a member while a writer and a reader
// keep going: no request fails, the file shrinks after deletes and
// compaction, the key-value hash is the same before and after (and after
// a restart), and the longest request seen during the defrag is logged.
func TestDefragUnderLoad(t *testing.T) {
	m := framework.StartKvd(t)
	c := newClientv3(t, m.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	rev := fillAndThin(ctx, t, c, 8000, 8000)
	hashBefore, err := c.HashKV(ctx, m.Endpoint, rev)
	if err != nil {
		t.Fatal(err)
	}
	// The status's size is the committed file: wait for the batch holding
	// the compaction to land.
	time.Sleep(300 * time.Millisecond)
	sizeBefore := fileSize(t, m.DBFile())

	var writes, reads loadStats
	stop := make(chan struct{})
	wg := steadyLoad(c, stop, &writes, &reads)
	time.Sleep(200 * time.Millisecond) // the load is running before the defrag starts
	start, w0 := time.Now(), writes.ops.Load()
	if _, err := c.Defragment(ctx, m.Endpoint); err != nil {
		t.Fatalf("defragment: %v", err)
	}
	took, w1 := time.Since(start), writes.ops.Load()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	sizeAfter := fileSize(t, m.DBFile())
	t.Logf("defrag took %v; file %d -> %d bytes; %d writes (%d during the defrag, longest %v), %d reads (longest %v)",
		took, sizeBefore, sizeAfter, writes.ops.Load(), w1-w0, time.Duration(writes.longest.Load()),
		reads.ops.Load(), time.Duration(reads.longest.Load()))
	if len(writes.errs)+len(reads.errs) > 0 {
		t.Fatalf("requests failed during defrag: writes %v, reads %v", writes.errs, reads.errs)
	}
	if w0 == 0 || w1 == w0 {
		t.Fatalf("the writer did not run during the defrag (%d writes before it, %d by its end)", w0, w1)
	}
	if sizeAfter >= sizeBefore/2 {
		t.Fatalf("database file %d bytes after defrag, %d before", sizeAfter, sizeBefore)
	}
	if _, err := os.Stat(m.DBFile() + ".defrag"); !os.IsNotExist(err) {
		t.Fatalf("defrag copy left behind: %v", err)
	}
	sameHash(ctx, t, c, m, rev, hashBefore.Hash)

	// The switch survives a restart, and so does every write made during it.
	m.Stop()
	m.Start()
	c = newClientv3(t, m.Endpoint)
	sameHash(ctx, t, c, m, rev, hashBefore.Hash)
	got, err := c.Get(ctx, "/load/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != writes.ops.Load() {
		t.Fatalf("%d writes acknowledged, %d keys after restart", writes.ops.Load(), got.Count)
	}
}

func sameHash(ctx context.Context, t *testing.T, c *clientv3.Client, m *framework.Member, rev int64, want uint32) {
	t.Helper()
	h, err := c.HashKV(ctx, m.Endpoint, rev)
	if err != nil {
		t.Fatal(err)
	}
	if h.Hash != want {
		t.Fatalf("hash at rev %d is %x, was %x before the defrag", rev, h.Hash, want)
	}
}
