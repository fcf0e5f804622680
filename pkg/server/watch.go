package server

import (
	"context"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/api"
	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// NewWatchStream starts a set of watchers for one client stream, whose
// context says who it comes from. Its watches are checked against the
// user's permissions when created, and again whenever users, roles or
// permissions change: a watch its user may no longer read is canceled.
func (s *Server) NewWatchStream(ctx context.Context) api.WatchStream {
	w := &watchStream{
		WatchStream: s.watchable.NewStream(),
		auth:        s.auth,
		user:        auth.InfoFrom(ctx).User,
		refused:     api.IdentifyError(ctx),
		ranges:      map[int64][2][]byte{},
		stopc:       make(chan struct{}),
		donec:       make(chan struct{}),
	}
	go w.recheck(&s.authChanged)
	return w
}

// watchStream takes the Watch service's requests as the store's watch
// options, for what its user may read.
type watchStream struct {
	*mvcc.WatchStream
	auth *auth.Store
	user string
	// refused, when set, is why the stream's token was refused: every
	// watch it asks for is refused with it.
	refused error

	mu     sync.Mutex
	ranges map[int64][2][]byte // watch ID -> key and range end

	stopc, donec chan struct{}
}

// permitted says whether the stream's user may read [key, end) now.
func (w *watchStream) permitted(key, end []byte) error {
	return w.auth.CanRead(auth.Info{User: w.user, Revision: w.auth.Revision()}, key, end)
}

func (w *watchStream) Watch(r *pb.WatchCreateRequest) (int64, error) {
	if w.refused != nil {
		return 0, w.refused
	}
	if err := w.permitted(r.Key, r.RangeEnd); err != nil {
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
	id, err := w.WatchStream.Watch(o)
	if err == nil {
		w.mu.Lock()
		w.ranges[id] = [2][]byte{r.Key, r.RangeEnd}
		w.mu.Unlock()
	}
	return id, err
}

func (w *watchStream) Cancel(id int64) bool {
	w.mu.Lock()
	delete(w.ranges, id)
	w.mu.Unlock()
	return w.WatchStream.Cancel(id)
}

// Close stops the recheck goroutine, then the watchers.
func (w *watchStream) Close() {
	close(w.stopc)
	<-w.donec
	w.WatchStream.Close()
}

// recheck cancels, after every auth change, the watches the user may no
// longer read, until the stream closes.
func (w *watchStream) recheck(changes *changeSignal) {
	defer close(w.donec)
	next := changes.next()
	for {
		select {
		case <-w.stopc:
			return
		case <-next:
		}
		// Wait for the change after this one before looking, so that a
		// change made while looking is not missed.
		next = changes.next()
		w.mu.Lock()
		var denied []int64
		for id, r := range w.ranges {
			if w.permitted(r[0], r[1]) != nil {
				denied = append(denied, id)
				delete(w.ranges, id)
			}
		}
		w.mu.Unlock()
		for _, id := range denied {
			w.WatchStream.CancelWith(id, rpctypes.ErrGRPCPermissionDenied.Error())
		}
	}
}

// changeSignal wakes everyone waiting for the next change at once.
type changeSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

// next is closed at the next change.
func (c *changeSignal) next() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changeSignal) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}
