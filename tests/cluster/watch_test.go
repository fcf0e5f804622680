package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestWatchSurvivesMemberKills: a watcher keeps receiving every event,
// once and in order, while each member in turn, including the one its
// stream is on, is killed with -9 and restarted.
func TestWatchSurvivesMemberKills(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	eps := strings.Split(framework.Endpoints(ms), ",")
	watcher := client(t, eps...)
	wch := watcher.Watch(ctx, "w/", clientv3.WithPrefix())
	writer := client(t, eps...)

	const perRound = 30
	seen := make(chan int64, 10*perRound)
	go func() {
		defer close(seen)
		for r := range wch {
			for _, ev := range r.Events {
				seen <- ev.Kv.ModRevision
			}
		}
	}()
	n := 0
	for _, victim := range ms {
		for range perRound {
			putRetrying(ctx, t, writer, fmt.Sprintf("w/%03d", n))
			n++
		}
		victim.Kill()
		for range perRound {
			putRetrying(ctx, t, writer, fmt.Sprintf("w/%03d", n))
			n++
		}
		victim.Start()
	}
	// Every write is one revision under the prefix (a retried write may
	// have landed twice), so the watcher owes exactly revisions 2..last.
	final, err := writer.Get(ctx, "w/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	last := final.Header.Revision
	var got []int64
	timeout := time.After(30 * time.Second)
	for int64(len(got)) < last-1 {
		select {
		case rev := <-seen:
			got = append(got, rev)
		case <-timeout:
			t.Fatalf("watcher saw %d of %d events", len(got), last-1)
		}
	}
	for i, rev := range got {
		if rev != int64(i+2) {
			t.Fatalf("event %d at revision %d, want %d (lost or repeated events)", i, rev, i+2)
		}
	}
}
