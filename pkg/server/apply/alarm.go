package apply

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// Alarms are the cluster's active alarms. They change only as Alarm
// entries apply, in log order on every member, and are stored in the
// alarm bucket in the same batch as the entry's index, so every member
// holds the same set and refuses the same requests.
type Alarms struct {
	mu     sync.RWMutex
	active map[alarmKey]struct{}
}

type alarmKey struct {
	member uint64
	typ    pb.AlarmType
}

// NewAlarms returns an empty set; Recover fills it from a database.
func NewAlarms() *Alarms { return &Alarms{active: map[alarmKey]struct{}{}} }

// AlarmReader walks the alarm bucket of a database.
type AlarmReader interface {
	ForEach(bucket, start []byte, fn func(k, v []byte) bool)
}

// Recover replaces the set with the alarms stored in the database.
func (a *Alarms) Recover(tx AlarmReader) error {
	active := map[alarmKey]struct{}{}
	var err error
	tx.ForEach(backend.Alarm, nil, func(k, _ []byte) bool {
		m := new(pb.AlarmMember)
		if err = proto.Unmarshal(k, m); err != nil {
			err = fmt.Errorf("alarm record %x: %w", k, err)
			return false
		}
		active[alarmKey{m.MemberID, m.Alarm}] = struct{}{}
		return true
	})
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.active = active
	a.mu.Unlock()
	return nil
}

// List returns the active alarms of type typ, or all of them for NONE,
// ordered by member and type.
func (a *Alarms) List(typ pb.AlarmType) []*pb.AlarmMember {
	a.mu.RLock()
	var out []*pb.AlarmMember
	for k := range a.active {
		if typ == pb.AlarmType_NONE || k.typ == typ {
			out = append(out, &pb.AlarmMember{MemberID: k.member, Alarm: k.typ})
		}
	}
	a.mu.RUnlock()
	slices.SortFunc(out, func(x, y *pb.AlarmMember) int {
		return cmp.Or(cmp.Compare(x.MemberID, y.MemberID), cmp.Compare(x.Alarm, y.Alarm))
	})
	return out
}

// Active says whether any member has an alarm of type typ.
func (a *Alarms) Active(typ pb.AlarmType) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for k := range a.active {
		if k.typ == typ {
			return true
		}
	}
	return false
}

// apply carries out an Alarm request inside the entry's write txn and
// answers as etcd does: GET lists (by type, whatever the member), ACTIVATE
// returns the alarm, new or already active, and DEACTIVATE the alarm it
// cleared, nothing when there was none.
func (a *Alarms) apply(t *mvcc.TxnWrite, r *pb.AlarmRequest) *pb.AlarmResponse {
	resp := &pb.AlarmResponse{Header: &pb.ResponseHeader{}}
	m := &pb.AlarmMember{MemberID: r.MemberID, Alarm: r.Alarm}
	k := alarmKey{r.MemberID, r.Alarm}
	switch r.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = a.List(r.Alarm)
	case pb.AlarmRequest_ACTIVATE:
		if r.Alarm == pb.AlarmType_NONE {
			break
		}
		a.mu.Lock()
		if _, ok := a.active[k]; !ok {
			a.active[k] = struct{}{}
			t.PutRecord(backend.Alarm, alarmRecordKey(m), nil)
		}
		a.mu.Unlock()
		resp.Alarms = []*pb.AlarmMember{m}
	case pb.AlarmRequest_DEACTIVATE:
		a.mu.Lock()
		_, ok := a.active[k]
		if ok {
			delete(a.active, k)
			t.DeleteRecord(backend.Alarm, alarmRecordKey(m))
		}
		a.mu.Unlock()
		if ok {
			resp.Alarms = []*pb.AlarmMember{m}
		}
	}
	return resp
}

func alarmRecordKey(m *pb.AlarmMember) []byte {
	b, _ := proto.Marshal(m) // two scalar fields always encode
	return b
}

// refuse is the error a request gets while an alarm is active, as etcd's
// appliers answer it: with CORRUPT, no write, compaction or lease change
// applies; with NOSPACE, nothing that may add data (a put, a txn with a
// put in either branch, a lease grant), while deletes, compactions and
// reads still do, which is how an operator frees space. A refused txn is
// refused whole, before any of it applies.
func (a *Alarms) refuse(r *pb.InternalRaftRequest) error {
	if a.Active(pb.AlarmType_CORRUPT) {
		if r.Put != nil || r.DeleteRange != nil || r.Txn != nil || r.Range != nil ||
			r.Compaction != nil || r.LeaseGrant != nil || r.LeaseRevoke != nil {
			return rpctypes.ErrGRPCCorrupt
		}
	}
	if a.Active(pb.AlarmType_NOSPACE) {
		if r.Put != nil || r.LeaseGrant != nil || (r.Txn != nil && Cost(r.Txn) > 0) {
			return rpctypes.ErrGRPCNoSpace
		}
	}
	return nil
}
