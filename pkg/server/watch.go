package server

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kvd-io/kvd/pkg/server/api"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// NewWatchStream starts a set of watchers for one client stream.
func (s *Server) NewWatchStream() api.WatchStream {
	return watchStream{s.watchable.NewStream()}
}

// watchStream takes the Watch service's requests as the store's watch
// options.
type watchStream struct{ *mvcc.WatchStream }

func (w watchStream) Watch(r *pb.WatchCreateRequest) (int64, error) {
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
