package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

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
