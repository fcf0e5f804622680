package api

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Alarm lists (GET), raises (ACTIVATE) or clears (DEACTIVATE) alarms. A
// GET with member 0 and type NONE lists every alarm; the member answers
// once the request has gone through raft, so the list is the cluster's.
func (s *maintenanceService) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp, err := s.m.Alarm(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	resp.Header = s.header(resp.Header)
	return resp, nil
}
