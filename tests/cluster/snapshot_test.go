package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// snapshotStatus is `kvctl snapshot status -w json`.
type snapshotStatus struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
}

func statusOf(t *testing.T, kvctl, file string) snapshotStatus {
	t.Helper()
	out, errOut, code := framework.RunCLI(t, kvctl, "", "snapshot", "status", file, "-w", "json")
	if code != 0 {
		t.Fatalf("snapshot status %s: exit %d: %s", file, code, errOut)
	}
	var st snapshotStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("snapshot status output %q: %v", out, err)
	}
	return st
}

// TestSnapshotUnderLoadRestoresNewCluster saves a snapshot from a follower
// of a 3-member cluster while a writer keeps writing, restores it into a
// new 3-member cluster with a new token, and finds there every key as of
// the snapshot's revision, every lease with its TTL and keys, and the
// source's HashKV at that revision on every restored member.
func TestSnapshotUnderLoadRestoresNewCluster(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	kvctl := framework.BuildKvctl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := client(t, ms[0].Endpoint, ms[1].Endpoint, ms[2].Endpoint)

	// History worth restoring: values large enough for a multi-megabyte
	// file, overwrites, deletions, and leases with keys.
	value := strings.Repeat("v", 2048)
	for i := range 2000 {
		if _, err := c.Put(ctx, fmt.Sprintf("/data/%04d", i%1500), fmt.Sprintf("%s-%d", value, i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Delete(ctx, "/data/00", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	leases := map[clientv3.LeaseID]int64{}
	for i, ttl := range []int64{300, 600, 900} {
		l, err := c.Grant(ctx, ttl)
		if err != nil {
			t.Fatal(err)
		}
		leases[l.ID] = ttl
		for j := range 3 {
			if _, err := c.Put(ctx, fmt.Sprintf("/leased/%d/%d", i, j), "x", clientv3.WithLease(l.ID)); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The writer goes on through the save; none of its writes may fail.
	var (
		writes   atomic.Int64
		writeErr error
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	framework.Repeat(&wg, stop, func(i int) bool {
		if _, err := c.Put(ctx, fmt.Sprintf("/load/%d", i%500), value); err != nil {
			writeErr = err
			return false
		}
		writes.Add(1)
		return true
	})
	for writes.Load() < 50 {
		time.Sleep(10 * time.Millisecond)
	}
	before, err := c.Get(ctx, "/none")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	out, errOut, code := framework.RunCLI(t, kvctl, ms[1].Endpoint, "snapshot", "save", file)
	writesAfterSave := writes.Load()
	after, err := c.Get(ctx, "/none")
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if code != 0 || out != "Snapshot saved at "+file+"\nServer version 3.7.0\n" {
		t.Fatalf("snapshot save: exit %d\n%s%s", code, out, errOut)
	}
	if writeErr != nil {
		t.Fatalf("a write failed while the snapshot streamed: %v", writeErr)
	}
	if writes.Load() == writesAfterSave {
		t.Fatalf("the writer stopped after the save (%d writes)", writes.Load())
	}
	if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
		t.Fatalf("%s.part is left behind: %v", file, err)
	}

	st := statusOf(t, kvctl, file)
	rev := st.Revision
	if rev < before.Header.Revision || rev > after.Header.Revision {
		t.Fatalf("snapshot at revision %d, outside the save's window [%d, %d]", rev, before.Header.Revision, after.Header.Revision)
	}
	want, err := c.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		t.Fatal(err)
	}
	if int(want.Count) != st.TotalKey {
		t.Fatalf("snapshot status counts %d keys, the source had %d at revision %d", st.TotalKey, want.Count, rev)
	}
	srcHash, err := c.HashKV(ctx, ms[1].Endpoint, rev)
	if err != nil {
		t.Fatal(err)
	}
	srcMembers, err := c.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}

	rs := framework.RestoreCluster(t, kvctl, framework.KvdBin(t), file, "restored-cluster", 3)
	rc := client(t, rs[0].Endpoint, rs[1].Endpoint, rs[2].Endpoint)
	got, err := rc.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Revision != rev {
		t.Errorf("restored cluster is at revision %d, the snapshot at %d", got.Header.Revision, rev)
	}
	if got.Count != want.Count {
		t.Fatalf("restored cluster has %d keys, the source had %d at revision %d", got.Count, want.Count, rev)
	}
	for i, kv := range want.Kvs {
		g := got.Kvs[i]
		if string(g.Key) != string(kv.Key) || string(g.Value) != string(kv.Value) || g.CreateRevision != kv.CreateRevision ||
			g.ModRevision != kv.ModRevision || g.Version != kv.Version || g.Lease != kv.Lease {
			t.Fatalf("key %d differs after restore:\n got %v\nwant %v", i, g, kv)
		}
	}
	checkRestoredLeases(ctx, t, rc, leases)
	for _, m := range rs {
		h, err := rc.HashKV(ctx, m.Endpoint, rev)
		if err != nil {
			t.Fatal(err)
		}
		if h.Hash != srcHash.Hash || h.CompactRevision != srcHash.CompactRevision {
			t.Errorf("%s: HashKV at %d is %d (compact %d), the source's %d (compact %d)", m.Name, rev, h.Hash, h.CompactRevision, srcHash.Hash, srcHash.CompactRevision)
		}
	}
	members, err := rc.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if members.Header.ClusterId == srcMembers.Header.ClusterId {
		t.Errorf("restored cluster kept the source's cluster ID %x", members.Header.ClusterId)
	}
	if len(members.Members) != 3 {
		t.Fatalf("restored cluster lists %d members: %v", len(members.Members), members.Members)
	}
	for _, m := range members.Members {
		if !strings.HasPrefix(m.Name, "r") || len(m.ClientURLs) != 1 {
			t.Errorf("restored cluster lists member %v", m)
		}
	}
	// The new cluster takes writes.
	if _, err := rc.Put(ctx, "/after-restore", "ok"); err != nil {
		t.Fatal(err)
	}
}

// checkRestoredLeases requires exactly the leases granted (with the TTL
// they were granted with and their three keys each), alive.
func checkRestoredLeases(ctx context.Context, t *testing.T, c *clientv3.Client, want map[clientv3.LeaseID]int64) {
	t.Helper()
	list, err := c.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Leases) != len(want) {
		t.Fatalf("restored cluster has %d leases, want %d", len(list.Leases), len(want))
	}
	for id, ttl := range want {
		l, err := c.TimeToLive(ctx, id, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		if l.GrantedTTL != ttl || l.TTL <= 0 || l.TTL > ttl || len(l.Keys) != 3 {
			t.Errorf("lease %x after restore: granted %d, remaining %d, %d keys; want granted %d with 3 keys", id, l.GrantedTTL, l.TTL, len(l.Keys), ttl)
		}
	}
}
