package apply

import (
	"context"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

func alarmReq(action pb.AlarmRequest_AlarmAction, member uint64, typ pb.AlarmType) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: action, MemberID: member, Alarm: typ}}
}

func (f *fixture) alarms(t *testing.T, r *pb.InternalRaftRequest) []*pb.AlarmMember {
	t.Helper()
	res := f.apply(r)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return res.Resp.(*pb.AlarmResponse).Alarms
}

func alarmsText(as []*pb.AlarmMember) string {
	s := ""
	for _, a := range as {
		s += alarmKeyText(a) + ";"
	}
	return s
}

func alarmKeyText(a *pb.AlarmMember) string {
	return a.Alarm.String() + "@" + string(rune('0'+a.MemberID))
}

// TestAlarmRequests answers each action as etcd does: ACTIVATE returns the
// alarm (also when already active) and NONE raises nothing, DEACTIVATE
// returns what it cleared, GET filters by type only, NONE meaning all.
func TestAlarmRequests(t *testing.T) {
	f := newFixture(t)
	steps := []struct {
		r    *pb.InternalRaftRequest
		want string
	}{
		{alarmReq(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE), ""},
		{alarmReq(pb.AlarmRequest_ACTIVATE, 2, pb.AlarmType_NOSPACE), "NOSPACE@2;"},
		{alarmReq(pb.AlarmRequest_ACTIVATE, 2, pb.AlarmType_NOSPACE), "NOSPACE@2;"},
		{alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_CORRUPT), "CORRUPT@1;"},
		{alarmReq(pb.AlarmRequest_ACTIVATE, 3, pb.AlarmType_NONE), ""},
		{alarmReq(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE), "CORRUPT@1;NOSPACE@2;"},
		{alarmReq(pb.AlarmRequest_GET, 1, pb.AlarmType_NOSPACE), "NOSPACE@2;"},
		{alarmReq(pb.AlarmRequest_DEACTIVATE, 2, pb.AlarmType_CORRUPT), ""},
		{alarmReq(pb.AlarmRequest_DEACTIVATE, 1, pb.AlarmType_CORRUPT), "CORRUPT@1;"},
		{alarmReq(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE), "NOSPACE@2;"},
	}
	for i, st := range steps {
		if got := alarmsText(f.alarms(t, st.r)); got != st.want {
			t.Fatalf("step %d %v: %q, want %q", i, st.r.Alarm, got, st.want)
		}
	}
}

// TestAlarmsStoredAndRecovered: alarms are kept in the alarm bucket under
// etcd's key (the marshaled AlarmMember), and a fresh set recovers them.
func TestAlarmsStoredAndRecovered(t *testing.T) {
	f := newFixture(t)
	f.alarms(t, alarmReq(pb.AlarmRequest_ACTIVATE, 7, pb.AlarmType_NOSPACE))
	f.alarms(t, alarmReq(pb.AlarmRequest_ACTIVATE, 9, pb.AlarmType_CORRUPT))
	f.alarms(t, alarmReq(pb.AlarmRequest_DEACTIVATE, 9, pb.AlarmType_CORRUPT))
	f.be.ForceCommit()
	var stored []string
	f.be.Read(func(tx backend.ReadTx) {
		tx.ForEach(backend.Alarm, nil, func(k, _ []byte) bool {
			stored = append(stored, string(k))
			return true
		})
	})
	want := string(alarmRecordKey(&pb.AlarmMember{MemberID: 7, Alarm: pb.AlarmType_NOSPACE}))
	if len(stored) != 1 || stored[0] != want {
		t.Fatalf("alarm bucket holds %q, want [%q]", stored, want)
	}
	fresh := NewAlarms()
	var err error
	f.be.Read(func(tx backend.ReadTx) { err = fresh.Recover(tx) })
	if err != nil {
		t.Fatal(err)
	}
	if got := alarmsText(fresh.List(pb.AlarmType_NONE)); got != "NOSPACE@7;" {
		t.Fatalf("recovered %q", got)
	}
}

// TestNoSpaceRefusesWhatAddsData: with NOSPACE active a put, a txn that
// may put in either branch and a lease grant are refused whole with
// etcd's error, while deletes, read-only txns and compaction apply;
// disarming restores writes.
func TestNoSpaceRefusesWhatAddsData(t *testing.T) {
	f := newFixture(t)
	f.put(t, "a", "1")
	f.put(t, "b", "2")
	f.alarms(t, alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_NOSPACE))
	put := &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("c"), Value: []byte("3")}}}
	del := &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}}
	nested := &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{put}}}}
	refused := map[string]*pb.InternalRaftRequest{
		"put":         {Put: &pb.PutRequest{Key: []byte("c"), Value: []byte("3")}},
		"txn put":     {Txn: &pb.TxnRequest{Success: []*pb.RequestOp{del, put}}},
		"txn else":    {Txn: &pb.TxnRequest{Success: []*pb.RequestOp{del}, Failure: []*pb.RequestOp{put}}},
		"nested txn":  {Txn: &pb.TxnRequest{Success: []*pb.RequestOp{del, nested}}},
		"lease grant": {LeaseGrant: &pb.LeaseGrantRequest{ID: 5, TTL: 60}},
	}
	for name, r := range refused {
		if res := f.apply(r); res.Err != rpctypes.ErrGRPCNoSpace {
			t.Errorf("%s: %v, want %v", name, res.Err, rpctypes.ErrGRPCNoSpace)
		}
	}
	if rev := f.s.Rev(); rev != 3 {
		t.Fatalf("refused requests moved the revision to %d", rev)
	}
	if res := f.apply(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{del}}}); res.Err != nil {
		t.Fatalf("txn that only deletes: %v", res.Err)
	}
	if res := f.apply(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("b")}}); res.Err != nil {
		t.Fatalf("delete: %v", res.Err)
	}
	if res := f.apply(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 4}}); res.Err != nil {
		t.Fatalf("compaction: %v", res.Err)
	}
	f.alarms(t, alarmReq(pb.AlarmRequest_DEACTIVATE, 1, pb.AlarmType_NOSPACE))
	f.put(t, "c", "3")
	r, err := f.a.Range(context.Background(), &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z")})
	if err != nil || keys(r) != "c=3" {
		t.Fatalf("after disarm: %v %v", r, err)
	}
}

// TestCorruptRefusesWrites: with CORRUPT active every write, compaction
// and lease change is refused, as etcd's corrupt applier does, and
// alarms can still be cleared.
func TestCorruptRefusesWrites(t *testing.T) {
	f := newFixture(t)
	f.put(t, "a", "1")
	f.alarms(t, alarmReq(pb.AlarmRequest_ACTIVATE, 3, pb.AlarmType_CORRUPT))
	for name, r := range map[string]*pb.InternalRaftRequest{
		"put":          {Put: &pb.PutRequest{Key: []byte("b")}},
		"delete":       {DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}},
		"txn":          {Txn: &pb.TxnRequest{}},
		"compaction":   {Compaction: &pb.CompactionRequest{Revision: 1}},
		"lease grant":  {LeaseGrant: &pb.LeaseGrantRequest{ID: 5, TTL: 60}},
		"lease revoke": {LeaseRevoke: &pb.LeaseRevokeRequest{ID: 5}},
	} {
		if res := f.apply(r); res.Err != rpctypes.ErrGRPCCorrupt {
			t.Errorf("%s: %v, want %v", name, res.Err, rpctypes.ErrGRPCCorrupt)
		}
	}
	f.alarms(t, alarmReq(pb.AlarmRequest_DEACTIVATE, 3, pb.AlarmType_CORRUPT))
	f.put(t, "b", "2")
}

// TestQuotaCost counts as etcd's quota does.
func TestQuotaCost(t *testing.T) {
	put := func(k, v string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
	}
	get := &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k")}}}
	tests := []struct {
		name string
		r    any
		want int
	}{
		{"put", &pb.PutRequest{Key: []byte("key"), Value: []byte("value")}, 256 + 8},
		{"lease grant", &pb.LeaseGrantRequest{TTL: 10}, 64},
		{"txn dearer branch", &pb.TxnRequest{Success: []*pb.RequestOp{put("a", "b")}, Failure: []*pb.RequestOp{put("a", "b"), put("c", "dd")}}, 2*256 + 2 + 3},
		{"nested txn", &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{put("x", "")}}}}}}, 257},
		{"read-only txn", &pb.TxnRequest{Success: []*pb.RequestOp{get}}, 0},
		{"delete", &pb.DeleteRangeRequest{Key: []byte("k")}, 0},
	}
	for _, tt := range tests {
		if got := Cost(tt.r); got != tt.want {
			t.Errorf("%s: cost %d, want %d", tt.name, got, tt.want)
		}
	}
	size := func(n int64) func() int64 { return func() int64 { return n } }
	q := NewQuota(1000)
	if !q.Available(size(700), &pb.PutRequest{Key: []byte("k")}) || q.Available(size(800), &pb.PutRequest{Key: []byte("k")}) {
		t.Error("a 257-byte put must fit at 700 bytes of 1000 and not at 800")
	}
	if !q.Available(size(5000), &pb.DeleteRangeRequest{}) {
		t.Error("a request that adds nothing must always fit")
	}
	if NewQuota(0).Limit() != 2<<30 || !NewQuota(-1).Available(size(1<<40), &pb.PutRequest{}) {
		t.Error("0 must mean 2 GiB and a negative quota none")
	}
}
