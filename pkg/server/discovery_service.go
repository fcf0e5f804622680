package server

import (
	"context"
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/discovery"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// discoveryService is the discovery-URL service of --enable-discovery-service,
// keeping its tokens in this cluster's key space.
func (s *Server) discoveryService(ctx context.Context) *discovery.Service {
	return discovery.NewService(discovery.ServiceConfig{
		Store:          discoveryStore{s},
		TokenTTL:       s.cfg.DiscoveryTokenTTL,
		RequestTimeout: s.requestTimeout(),
		Context:        ctx,
		Logger:         s.lg,
	})
}

// discoveryStore gives the service the member's own read, write, lease
// and watch paths: writes go through raft like a client's, reads wait for
// the same barrier as a linearizable read.
type discoveryStore struct{ s *Server }

// asService is the identity the service's writes carry when auth is on:
// the service is part of the server, which the operator enabled, and
// writes under its reserved prefix only.
func (d discoveryStore) asService(ctx context.Context) context.Context {
	return auth.WithInfo(ctx, auth.Info{User: "root", Revision: d.s.auth.Revision()})
}

func (d discoveryStore) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := d.s.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	return d.s.applier.Range(ctx, r)
}

func (d discoveryStore) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	return d.s.Txn(d.asService(ctx), r)
}

func (d discoveryStore) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	return d.s.LeaseGrant(d.asService(ctx), r)
}

// NextEvent watches the local store, which sees every change as this
// member applies it, with or without a leader.
func (d discoveryStore) NextEvent(ctx context.Context, key, end []byte, rev int64) (*mvccpb.Event, error) {
	ws := d.s.watchable.NewStream()
	defer ws.Close()
	if _, err := ws.Watch(mvcc.WatchOptions{Key: key, End: end, StartRev: rev}); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-d.s.stopc:
			return nil, errStopped
		case resp := <-ws.Chan():
			switch {
			case resp.CompactRevision != 0:
				return nil, discovery.ErrCompacted
			case resp.Canceled:
				return nil, errors.New("watch canceled: " + resp.CancelReason)
			case len(resp.Events) > 0:
				return resp.Events[0], nil
			}
		}
	}
}
