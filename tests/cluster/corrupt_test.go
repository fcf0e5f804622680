package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestCorruptMemberDetected alters a stopped member's database on disk
// (one value in the key bucket) and restarts it: the leader's periodic
// hash check raises CORRUPT for that member, after which writes are
// refused with etcd's error while reads still work; and the member,
// restarted with the start-up check, refuses to start. A healthy member
// passes the start-up check.
func TestCorruptMemberDetected(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3, "--corrupt-check-time", "500ms")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c1 := client(t, ms[0].Endpoint)
	var last *clientv3.PutResponse
	for i := range 10 {
		var err error
		if last, err = c1.Put(ctx, fmt.Sprintf("/k%d", i), "good"); err != nil {
			t.Fatal(err)
		}
	}
	// Every member has applied the writes before m3 stops.
	for _, m := range ms {
		waitRevision(ctx, t, client(t, m.Endpoint), last.Header.Revision)
	}
	ml, err := c1.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}

	initialCheck := []string{"--feature-gates", "InitialCorruptCheck=true"}
	ms[1].Stop()
	ms[1].Extra = append(ms[1].Extra, initialCheck...)
	ms[1].Start()

	bad := ms[2]
	bad.Stop()
	alterValue(t, bad.DBFile(), "/k3")
	bad.Start()
	want := &pb.AlarmMember{MemberID: memberID(ml, bad.Name), Alarm: pb.AlarmType_CORRUPT}
	if got := waitAlarm(ctx, t, c1); got.MemberID != want.MemberID || got.Alarm != want.Alarm {
		t.Fatalf("alarm raised: %v, want %v", got, want)
	}
	if _, err := c1.Put(ctx, "/after", "x"); err == nil || err.Error() != rpctypes.ErrCorrupt.Error() {
		t.Fatalf("put with CORRUPT active: %v, want %q", err, rpctypes.ErrCorrupt)
	}
	if _, err := c1.Delete(ctx, "/k1"); err == nil || err.Error() != rpctypes.ErrCorrupt.Error() {
		t.Fatalf("delete with CORRUPT active: %v, want %q", err, rpctypes.ErrCorrupt)
	}
	if r, err := c1.Get(ctx, "/k3"); err != nil || r.Count != 1 || string(r.Kvs[0].Value) != "good" {
		t.Fatalf("read with CORRUPT active: %v %v", r, err)
	}

	bad.Stop()
	bad.Extra = append(bad.Extra, initialCheck...)
	bad.Launch()
	code, ok := bad.WaitExit(60 * time.Second)
	if !ok {
		t.Fatalf("the altered member started despite the start-up check; log:\n%s", bad.Log())
	}
	if code == 0 || !strings.Contains(bad.Log(), "found data inconsistency with peers") {
		t.Fatalf("the altered member exited %d; log:\n%s", code, bad.Log())
	}
}

// alterValue rewrites, in the bbolt file at path, the latest stored
// version of key with a different value, as a bad disk or a hand edit
// might.
func alterValue(t *testing.T, path, key string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return fmt.Errorf("no key bucket in %s", path)
		}
		var rk []byte
		kv := new(mvccpb.KeyValue)
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if err := proto.Unmarshal(v, kv); err == nil && string(kv.Key) == key {
				rk = append([]byte(nil), k...)
				break
			}
		}
		if rk == nil {
			return fmt.Errorf("%s not stored in %s", key, path)
		}
		kv.Value = []byte("evil")
		v, err := proto.Marshal(kv)
		if err != nil {
			return err
		}
		return b.Put(rk, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func waitRevision(ctx context.Context, t *testing.T, c *clientv3.Client, rev int64) {
	t.Helper()
	for {
		r, err := c.Get(ctx, "/", clientv3.WithSerializable(), clientv3.WithCountOnly())
		if err == nil && r.Header.Revision >= rev {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("revision %d not reached: %v", rev, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitAlarm waits until the cluster lists an alarm and returns it.
func waitAlarm(ctx context.Context, t *testing.T, c *clientv3.Client) *pb.AlarmMember {
	t.Helper()
	for {
		r, err := c.AlarmList(ctx)
		if err == nil && len(r.Alarms) > 0 {
			if len(r.Alarms) > 1 {
				t.Fatalf("alarms: %v, want one", r.Alarms)
			}
			return r.Alarms[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no alarm raised: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
