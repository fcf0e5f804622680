package client

import (
	"context"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Maintenance asks members about themselves and looks after their
// storage. The calls that name an endpoint talk to that member alone,
// since the answer is about it, not about whichever member the balancer
// would pick.
type Maintenance interface {
	// Status reports the member's version, database size, raft state.
	Status(ctx context.Context, endpoint string) (*pb.StatusResponse, error)
	// HashKV hashes the member's key-value history up to rev (0 means the
	// latest revision), to compare members with each other.
	HashKV(ctx context.Context, endpoint string, rev int64) (*pb.HashKVResponse, error)
	// Defragment compacts the member's database file, giving freed pages
	// back to the file system.
	Defragment(ctx context.Context, endpoint string) (*pb.DefragmentResponse, error)
	// AlarmList lists the cluster's active alarms.
	AlarmList(ctx context.Context) (*pb.AlarmResponse, error)
	// AlarmDisarm clears alarm m. Member 0 with type NONE clears every
	// active alarm, one by one, as clientv3 does; the answer then lists
	// those cleared and has no header.
	AlarmDisarm(ctx context.Context, m *pb.AlarmMember) (*pb.AlarmResponse, error)
	// MoveLeader asks the leader to hand its leadership to the member
	// transfereeID. Only the leader accepts it (others answer "not
	// leader"), and the request goes over the client's connection like
	// any other: make the client with the leader's endpoint alone, as
	// found with Status. It is not retried.
	MoveLeader(ctx context.Context, transfereeID uint64) (*pb.MoveLeaderResponse, error)
	// Snapshot streams the database of the member the client talks to,
	// followed by its SHA-256 (snapshot.go).
	Snapshot(ctx context.Context) (io.ReadCloser, error)
	// SnapshotWithVersion is Snapshot with the member's storage version.
	SnapshotWithVersion(ctx context.Context) (*SnapshotResponse, error)
}

type maintenance struct{ c *Client }

// onMember runs call over a connection to endpoint alone.
func onMember[R any](ctx context.Context, c *Client, endpoint string, call func(pb.MaintenanceClient) (R, error)) (R, error) {
	var zero R
	conn, err := c.dialEndpoint(endpoint)
	if err != nil {
		return zero, err
	}
	defer conn.Close()
	resp, err := call(pb.NewMaintenanceClient(conn))
	if err != nil {
		return zero, toErr(ctx, err)
	}
	return resp, nil
}

func (m *maintenance) Status(ctx context.Context, endpoint string) (*pb.StatusResponse, error) {
	return onMember(ctx, m.c, endpoint, func(mc pb.MaintenanceClient) (*pb.StatusResponse, error) {
		return mc.Status(ctx, &pb.StatusRequest{})
	})
}

func (m *maintenance) HashKV(ctx context.Context, endpoint string, rev int64) (*pb.HashKVResponse, error) {
	return onMember(ctx, m.c, endpoint, func(mc pb.MaintenanceClient) (*pb.HashKVResponse, error) {
		return mc.HashKV(ctx, &pb.HashKVRequest{Revision: rev})
	})
}

func (m *maintenance) Defragment(ctx context.Context, endpoint string) (*pb.DefragmentResponse, error) {
	return onMember(ctx, m.c, endpoint, func(mc pb.MaintenanceClient) (*pb.DefragmentResponse, error) {
		return mc.Defragment(ctx, &pb.DefragmentRequest{})
	})
}

func (m *maintenance) AlarmList(ctx context.Context) (*pb.AlarmResponse, error) {
	resp, err := pb.NewMaintenanceClient(m.c.conn).Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	return resp, toErr(ctx, err)
}

func (m *maintenance) AlarmDisarm(ctx context.Context, am *pb.AlarmMember) (*pb.AlarmResponse, error) {
	if am.MemberID == 0 && am.Alarm == pb.AlarmType_NONE {
		list, err := m.AlarmList(ctx)
		if err != nil {
			return nil, err
		}
		all := &pb.AlarmResponse{}
		for _, a := range list.Alarms {
			resp, err := m.AlarmDisarm(ctx, a)
			if err != nil {
				return nil, err
			}
			all.Alarms = append(all.Alarms, resp.Alarms...)
		}
		return all, nil
	}
	resp, err := pb.NewMaintenanceClient(m.c.conn).Alarm(ctx, &pb.AlarmRequest{
		Action: pb.AlarmRequest_DEACTIVATE, MemberID: am.MemberID, Alarm: am.Alarm,
	})
	if err != nil {
		return nil, toErr(ctx, err)
	}
	return resp, nil
}

func (m *maintenance) MoveLeader(ctx context.Context, transfereeID uint64) (*pb.MoveLeaderResponse, error) {
	resp, err := pb.NewMaintenanceClient(m.c.conn).MoveLeader(ctx, &pb.MoveLeaderRequest{TargetID: transfereeID})
	if err != nil {
		return nil, toErr(ctx, err)
	}
	return resp, nil
}
