package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestDefragKilledMidway kills a member with SIGKILL while its defrag is
// copying the database and writes go on through the others. Restarted,
// the member drops the half-made copy, holds every acknowledged write
// and hashes its history as the other two do.
func TestDefragKilledMidway(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	victim := ms[followerOf(ctx, t, ms)]
	var others []*framework.Member
	for _, m := range ms {
		if m != victim {
			others = append(others, m)
		}
	}
	c := client(t, others[0].Endpoint, others[1].Endpoint)

	// About 100 MB, half of it deleted: a copy that takes a while.
	val := strings.Repeat("x", 256<<10)
	for i := range 400 {
		if _, err := c.Put(ctx, fmt.Sprintf("/big/%04d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 400; i += 2 {
		if _, err := c.Delete(ctx, fmt.Sprintf("/big/%04d", i)); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	framework.Repeat(&wg, stop, func(i int) bool {
		key := fmt.Sprintf("/acked/%06d", i)
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		if _, err := c.Put(pctx, key, "v"); err == nil {
			mu.Lock()
			acked = append(acked, key)
			mu.Unlock()
		}
		return true
	})

	// The victim must have applied the fill before its defrag starts.
	eventually(t, 30*time.Second, victim.Name+" has the fill", func() error {
		n, err := countOn(ctx, t, victim, "/big/")
		if err == nil && n != 200 {
			err = fmt.Errorf("%d keys", n)
		}
		return err
	})
	copyFile := victim.DBFile() + ".defrag"
	defragDone := make(chan error, 1)
	go func() {
		_, err := client(t, victim.Endpoint).Defragment(ctx, victim.Endpoint)
		defragDone <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(copyFile); err == nil {
			break
		}
		select {
		case err := <-defragDone:
			t.Fatalf("defrag ended (%v) before the kill could land; make the database bigger", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("defrag never started its copy")
		}
		time.Sleep(200 * time.Microsecond)
	}
	time.Sleep(20 * time.Millisecond) // well into the copy
	victim.Kill()
	<-defragDone
	time.Sleep(300 * time.Millisecond) // writes go on while it is down
	victim.Start()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	if _, err := os.Stat(copyFile); !os.IsNotExist(err) {
		t.Fatalf("the half-made copy is still there after restart: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no write acknowledged around the kill; the test proves little")
	}
	last := acked[len(acked)-1]
	eventually(t, 30*time.Second, victim.Name+" caught up", func() error {
		resp, err := client(t, victim.Endpoint).Get(ctx, last)
		if err == nil && len(resp.Kvs) != 1 {
			err = fmt.Errorf("%s missing", last)
		}
		return err
	})
	got := map[string]bool{}
	resp, err := client(t, victim.Endpoint).Get(ctx, "/acked/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSerializable())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = true
	}
	for _, k := range acked {
		if !got[k] {
			t.Fatalf("acknowledged %s missing on %s after the kill", k, victim.Name)
		}
	}
	if n, err := countOn(ctx, t, victim, "/big/"); err != nil || n != 200 {
		t.Fatalf("%s has %d of the 200 big keys (%v)", victim.Name, n, err)
	}
	if err := hashesAgree(ctx, t, ms, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes acknowledged; hashes agree at rev %d", len(acked), resp.Header.Revision)

	// A defrag run to its end afterwards works and changes no hash.
	if _, err := client(t, victim.Endpoint).Defragment(ctx, victim.Endpoint); err != nil {
		t.Fatal(err)
	}
	if err := hashesAgree(ctx, t, ms, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
}
