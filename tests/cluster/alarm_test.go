package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestAlarmReachesMemberBySnapshot: an alarm raised while a member is
// down, whose entry the leader's log no longer holds when it comes back
// (with --snapshot-count 10 and 5 catch-up entries, 40 entries later the
// member can only catch up by a snapshot), reaches that member inside the
// snapshot it installs, and the member reports it.
func TestAlarmReachesMemberBySnapshot(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3, "--snapshot-count", "10", "--snapshot-catchup-entries", "5")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c1 := client(t, ms[0].Endpoint)
	for i := range 40 {
		if _, err := c1.Put(ctx, fmt.Sprintf("/k%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	ml, err := c1.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lagging := ms[2]
	lagging.Stop()
	// It may have led: a proposal made before the others elect a new
	// leader is lost, and the call only times out.
	ms[0].WaitHealthy(20 * time.Second)

	// Raised by hand, as etcd allows root to; deletes still apply under
	// NOSPACE and push the alarm's entry behind a snapshot.
	raised := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: memberID(ml, ms[0].Name), Alarm: pb.AlarmType_NOSPACE}
	if _, err := pb.NewMaintenanceClient(c1.ActiveConnection()).Alarm(ctx, raised); err != nil {
		t.Fatalf("activate: %v", err)
	}
	var last int64
	for i := range 40 {
		resp, err := c1.Delete(ctx, fmt.Sprintf("/k%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Header.Revision
	}

	lagging.Start()
	c3 := client(t, lagging.Endpoint)
	waitRevision(ctx, t, c3, last)
	st, err := c3.Status(ctx, lagging.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("memberID:%d alarm:NOSPACE", raised.MemberID)
	if !slices.Contains(st.Errors, want) {
		t.Fatalf("status of the member that caught up by snapshot: errors %q, want %q", st.Errors, want)
	}
}

// TestNoSpaceRefusedAsApplied: with NOSPACE raised by hand on a cluster far
// below its quota, each member's own size check passes, and it is the
// applier, on every member, that refuses a txn deleting one key and
// putting another, whole; a txn that only deletes applies; disarm restores
// writes.
func TestNoSpaceRefusedAsApplied(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c1 := client(t, ms[0].Endpoint)
	for _, k := range []string{"/a", "/b"} {
		if _, err := c1.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	ml, err := c1.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raised := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: memberID(ml, ms[1].Name), Alarm: pb.AlarmType_NOSPACE}
	if _, err := pb.NewMaintenanceClient(c1.ActiveConnection()).Alarm(ctx, raised); err != nil {
		t.Fatalf("activate: %v", err)
	}
	before := clientGet(ctx, t, c1, "/", clientv3.WithPrefix())
	for _, m := range ms {
		_, err := client(t, m.Endpoint).Txn(ctx).Then(clientv3.OpDelete("/a"), clientv3.OpPut("/c", "v")).Commit()
		if err == nil || err.Error() != rpctypes.ErrNoSpace.Error() {
			t.Fatalf("txn through %s: %v, want %q", m.Name, err, rpctypes.ErrNoSpace)
		}
	}
	after := clientGet(ctx, t, c1, "/", clientv3.WithPrefix())
	if after.Count != before.Count || after.Header.Revision != before.Header.Revision {
		t.Fatalf("refused txns changed the store: %v then %v", before.Kvs, after.Kvs)
	}
	if _, err := c1.Txn(ctx).Then(clientv3.OpDelete("/a")).Commit(); err != nil {
		t.Fatalf("txn that only deletes: %v", err)
	}
	if _, err := c1.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Txn(ctx).Then(clientv3.OpDelete("/b"), clientv3.OpPut("/c", "v")).Commit(); err != nil {
		t.Fatalf("txn after disarm: %v", err)
	}
}
