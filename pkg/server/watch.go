package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kvd-io/kvd/pkg/server/api"
	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// NewWatchStream starts a set of watchers for one client stream, whose
// context says who it comes from.
func (s *Server) NewWatchStream(ctx context.Context) api.WatchStream {
	return watchStream{s.watchable.NewStream(), s.auth, auth.InfoFrom(ctx)}
}

// watchStream takes the Watch service's requests as the store's watch
// options, for what its user may read.
type watchStream struct {
	*mvcc.WatchStream
	auth *auth.Store
	info auth.Info
}

func (w watchStream) Watch(r *pb.WatchCreateRequest) (int64, error) {
	if err := w.auth.CanRead(w.info, r.Key, r.RangeEnd); err != nil {
		return 0, apply.ToGRPC(err)
	}
	o := mvcc.WatchOptions{
		ID:             r.WatchId,
		Key:            r.Key,
		End:            r.RangeEnd,
		StartRev:       r.StartRevision,
		PrevKV:         r.PrevKv,
		ProgressNotify: r.ProgressNotify,
	}
	for _, f := range r.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			o.NoPut = true
		case pb.WatchCreateRequest_NODELETE:
			o.NoDelete = true
		}
	}
	return w.WatchStream.Watch(o)
}
