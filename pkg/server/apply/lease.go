package apply

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// grant creates a lease. The member that took the request chose its ID
// before proposing it, so every member grants the same one.
func (w writer) grant(r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	ttl, err := w.leases.Grant(w.t, r.ID, r.TTL)
	if err != nil {
		return nil, err
	}
	return &pb.LeaseGrantResponse{Header: hdr(w.t.Rev()), ID: r.ID, TTL: ttl}, nil
}

// revoke ends a lease and deletes its keys, all at one revision, so a
// watcher sees them go together.
func (w writer) revoke(r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	keys, err := w.leases.Revoke(w.t, r.ID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		w.t.DeleteRange([]byte(k), nil)
	}
	return &pb.LeaseRevokeResponse{Header: hdr(w.t.Rev())}, nil
}

// checkpoint records the leader's view of how long leases have left, so
// a new leader does not give them their whole TTL back.
func (w writer) checkpoint(r *pb.LeaseCheckpointRequest) *pb.LeaseCheckpointResponse {
	for _, cp := range r.Checkpoints {
		w.leases.Checkpoint(w.t, cp.ID, cp.Remaining_TTL)
	}
	return &pb.LeaseCheckpointResponse{Header: hdr(w.t.Rev())}
}
