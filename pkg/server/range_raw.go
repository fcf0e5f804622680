package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kvd-io/kvd/pkg/server/api"
	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// LocalRangeRaw serves a plain range from the records as the store keeps
// them, for the API to encode its answer without decoding them first (see
// api.RawRanger). The caller must be allowed to read the range, as for
// LocalRange.
func (s *Server) LocalRangeRaw(ctx context.Context, r *pb.RangeRequest, lim api.RawLimit, fn func(rev, count int64, vals [][]byte) error) error {
	if err := s.auth.CanRead(auth.InfoFrom(ctx), r.Key, r.RangeEnd); err != nil {
		return apply.ToGRPC(err)
	}
	return apply.ToGRPC(s.store.RangeRaw(r.Key, r.RangeEnd, mvcc.RangeOptions{Limit: lim.Keys, Rev: r.Revision, Paged: lim.Paged}, fn))
}
