package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvd-io/kvd/tests/framework"
)

// quietClient is a client that does not log each failed call: these
// tests make many fail on purpose.
func quietClient(t *testing.T, eps ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// batchesSeen sums, over the members that answer, the hand-offs to raft
// that carried several proposals.
func batchesSeen(t *testing.T, ms []*framework.Member) float64 {
	t.Helper()
	var n float64
	for _, m := range ms {
		if !m.Healthy() {
			continue
		}
		n += framework.ScrapeMetrics(t, m.ClientURL()+"/metrics").Must(t, "kvd_server_proposal_batches_total")
	}
	return n
}

// TestBatchFailsPartWay: concurrent writes that go to raft in batches,
// where some fail as they apply (a put on a lease that does not exist, a
// txn whose comparison fails) or before proposing (a request too large),
// each get their own answer: the good puts apply with their own revision,
// the others get etcd's error or outcome and change nothing, not even the
// revision.
func TestBatchFailsPartWay(t *testing.T) {
	m := framework.StartKvd(t, "--max-request-bytes", "1024")
	ms := []*framework.Member{m}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	clients := make([]*clientv3.Client, 8)
	for i := range clients {
		clients[i] = quietClient(t, m.Endpoint)
	}
	const unknownLease = clientv3.LeaseID(0x7777)
	big := strings.Repeat("x", 2000)
	const writers = 64

	for round := 0; ; round++ {
		start, err := clients[0].Get(ctx, "nothing")
		if err != nil {
			t.Fatal(err)
		}
		revs := make([]int64, writers)
		errs := make([]error, writers)
		failedTxn := make([]bool, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				c := clients[i%len(clients)]
				key := fmt.Sprintf("r%d/%d", round, i)
				switch i % 4 {
				case 0:
					var resp *clientv3.PutResponse
					if resp, errs[i] = c.Put(ctx, "ok/"+key, "v"+key); errs[i] == nil {
						revs[i] = resp.Header.Revision
					}
				case 1:
					_, errs[i] = c.Put(ctx, "lease/"+key, "v", clientv3.WithLease(unknownLease))
				case 2:
					var resp *clientv3.TxnResponse
					resp, errs[i] = c.Txn(ctx).If(clientv3.Compare(clientv3.Value("ok/"+key), "=", "never")).
						Then(clientv3.OpPut("txn/"+key, "v")).Commit()
					failedTxn[i] = errs[i] == nil && !resp.Succeeded
				case 3:
					_, errs[i] = c.Put(ctx, "big/"+key, big)
				}
			})
		}
		wg.Wait()

		puts := 0
		seen := map[int64]bool{}
		for i := range writers {
			switch i % 4 {
			case 0:
				if errs[i] != nil {
					t.Fatalf("round %d: good put %d failed: %v", round, i, errs[i])
				}
				if seen[revs[i]] {
					t.Fatalf("round %d: two puts answered with revision %d", round, revs[i])
				}
				seen[revs[i]] = true
				puts++
			case 1:
				if !errors.Is(errs[i], rpctypes.ErrLeaseNotFound) {
					t.Fatalf("round %d: put on an unknown lease: err %v, want %v", round, errs[i], rpctypes.ErrLeaseNotFound)
				}
			case 2:
				if !failedTxn[i] {
					t.Fatalf("round %d: txn with a failing comparison: err %v, succeeded %v", round, errs[i], !failedTxn[i])
				}
			case 3:
				if !errors.Is(errs[i], rpctypes.ErrRequestTooLarge) {
					t.Fatalf("round %d: too large a put: err %v, want %v", round, errs[i], rpctypes.ErrRequestTooLarge)
				}
			}
		}
		all, err := clients[0].Get(ctx, "", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if got := all.Header.Revision - start.Header.Revision; got != int64(puts) {
			t.Fatalf("round %d: revision moved by %d for %d good puts", round, got, puts)
		}
		for _, kv := range all.Kvs {
			k := string(kv.Key)
			if !strings.HasPrefix(k, "ok/") {
				t.Fatalf("round %d: a failed write left key %q", round, k)
			}
			if string(kv.Value) != "v"+strings.TrimPrefix(k, "ok/") || kv.Version != 1 {
				t.Fatalf("round %d: key %q = %q version %d", round, k, kv.Value, kv.Version)
			}
		}
		for i := 0; i < writers; i += 4 {
			key := fmt.Sprintf("ok/r%d/%d", round, i)
			resp, err := clients[0].Get(ctx, key)
			if err != nil || resp.Count != 1 || resp.Kvs[0].ModRevision != revs[i] {
				t.Fatalf("round %d: %s after its put answered revision %d: %v %v", round, key, revs[i], resp, err)
			}
		}
		// Enough rounds for the failing and succeeding writes to have
		// shared raft hand-offs.
		if batchesSeen(t, ms) > 0 && round >= 2 {
			return
		}
		if round == 20 {
			t.Fatal("no proposals went to raft in a batch in 20 rounds of concurrent writes")
		}
	}
}

// etcdError says whether err is an answer a client may get from etcd: one
// of etcd's errors (the client turns those it knows into EtcdError), a
// gRPC status other than a bare Unknown, or raft's own refusal, which etcd
// passes on as it is.
func etcdError(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return true
	}
	s, ok := status.FromError(err)
	if !ok {
		return false
	}
	return s.Code() != codes.Unknown || s.Message() == "raft proposal dropped"
}

// TestBatchLeaderChange: many writers keep putting unique keys through all
// three members while leadership moves twice and the leader is killed
// once, with batches of proposals in flight each time. Afterwards every
// acknowledged put is there once with the revision it was answered with,
// none answered "raft proposal dropped" is there, no put applied twice
// (every key's version is 1, the revisions of the keys are exactly those
// the store went through), every failure is an etcd error, and the
// members agree.
func TestBatchLeaderChange(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start, err := quietClient(t, strings.Split(framework.Endpoints(ms), ",")...).Get(ctx, "w/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var clients []*clientv3.Client
	for _, m := range ms {
		for range 2 {
			clients = append(clients, quietClient(t, m.Endpoint))
		}
	}

	var (
		mu     sync.Mutex
		acked  = map[string]int64{}
		failed = map[string]error{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const writers = 48
	for w := range writers {
		wg.Go(func() {
			c := clients[w%len(clients)]
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w/%d/%d", w, seq)
				pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
				resp, err := c.Put(pctx, key, key)
				pcancel()
				mu.Lock()
				if err == nil {
					acked[key] = resp.Header.Revision
				} else {
					failed[key] = err
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	ackedSoFar := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitAcks := func(more int) {
		want := ackedSoFar() + more
		eventually(t, time.Minute, fmt.Sprintf("%d acknowledged puts", want), func() error {
			if n := ackedSoFar(); n < want {
				return fmt.Errorf("%d so far", n)
			}
			return nil
		})
	}

	waitAcks(300)
	for range 2 {
		lead := leaderOf(ctx, t, ms)
		next := (lead + 1) % len(ms)
		st, err := client(t, ms[lead].Endpoint).Status(ctx, ms[next].Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client(t, ms[lead].Endpoint).MoveLeader(ctx, st.Header.MemberId); err != nil {
			t.Fatalf("move leader: %v", err)
		}
		waitAcks(300)
	}
	batches := batchesSeen(t, ms)
	lead := leaderOf(ctx, t, ms)
	ms[lead].Kill()
	waitAcks(300)
	ms[lead].Start()
	ms[lead].WaitHealthy(30 * time.Second)
	waitAcks(100)
	close(stop)
	wg.Wait()
	if batches == 0 {
		t.Fatal("no proposals went to raft in a batch under 48 writers")
	}

	mu.Lock()
	defer mu.Unlock()
	kinds := map[string]int{}
	for key, err := range failed {
		if !etcdError(err) {
			t.Errorf("put %s failed with %v (%T), not an etcd error", key, err, err)
		}
		kinds[err.Error()]++
	}
	t.Logf("failures: %v", kinds)
	all, err := quietClient(t, strings.Split(framework.Endpoints(ms), ",")...).Get(ctx, "w/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	revs := map[int64]string{}
	appliedAfterError := map[string]int{}
	for _, kv := range all.Kvs {
		k := string(kv.Key)
		if string(kv.Value) != k || kv.Version != 1 || kv.CreateRevision != kv.ModRevision {
			t.Fatalf("key %s = %q, version %d, created %d, modified %d: applied more than once", k, kv.Value, kv.Version, kv.CreateRevision, kv.ModRevision)
		}
		if other, ok := revs[kv.ModRevision]; ok {
			t.Fatalf("keys %s and %s both at revision %d", other, k, kv.ModRevision)
		}
		revs[kv.ModRevision] = k
		if _, ok := acked[k]; !ok {
			err, ok := failed[k]
			if !ok {
				t.Fatalf("key %s present though never written", k)
			}
			// raft's refusal is certain: a dropped proposal never applies.
			if strings.Contains(err.Error(), "raft proposal dropped") {
				t.Fatalf("put %s was answered %q but applied", k, err)
			}
			appliedAfterError[err.Error()]++
		}
	}
	for key, rev := range acked {
		got, ok := revs[rev]
		if !ok || got != key {
			t.Fatalf("acknowledged put %s at revision %d: revision holds %q", key, rev, got)
		}
	}
	if n := all.Header.Revision - start.Header.Revision; n != int64(len(all.Kvs)) {
		t.Fatalf("the store went through %d revisions for %d keys", n, len(all.Kvs))
	}
	t.Logf("%d puts acknowledged, %d failed, %d keys, %.0f batches before the kill; applied though they failed: %v", len(acked), len(failed), len(all.Kvs), batches, appliedAfterError)

	// Every member applied the same: same revision, same keys.
	for _, m := range ms {
		eventually(t, 30*time.Second, m.Name+" has every write", func() error {
			resp, err := client(t, m.Endpoint).Get(ctx, "w/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
			if err != nil {
				return err
			}
			if resp.Count != int64(len(all.Kvs)) || resp.Header.Revision != all.Header.Revision {
				return fmt.Errorf("%d keys at revision %d, want %d at %d", resp.Count, resp.Header.Revision, len(all.Kvs), all.Header.Revision)
			}
			return nil
		})
	}
}
