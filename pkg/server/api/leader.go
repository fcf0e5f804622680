package api

import (
	"context"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// A client that asks for a leader (clientv3.WithRequireLeader puts
// "hasleader: true" in the request metadata) would rather fail over than
// wait on a member cut off from the cluster. Its calls are refused with
// etcd's "no leader" error while this member knows no leader, and its
// streams, watches above all, are ended with that error once the member
// has gone without a leader for noLeaderChecks election timeouts in a
// row: a stream costs more to re-establish than a call, so a short
// election does not end it.

const noLeaderChecks = 3

// requireLeader says whether the call's metadata asks for a leader.
func requireLeader(ctx context.Context) bool {
	// ValueFromIncomingContext looks the one key up; FromIncomingContext
	// would copy the whole metadata map on every call.
	v := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataRequireLeaderKey)
	return len(v) > 0 && v[0] == rpctypes.MetadataHasLeader
}

// leaderGuard refuses calls and ends streams that require a leader.
type leaderGuard struct {
	hasLeader func() bool
	interval  time.Duration // one election timeout
}

func (g leaderGuard) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if requireLeader(ctx) && !g.hasLeader() {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	return next(ctx, req)
}

func (g leaderGuard) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if !requireLeader(ss.Context()) {
		return next(srv, ss)
	}
	if !g.hasLeader() {
		return rpctypes.ErrGRPCNoLeader
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	var lost atomic.Bool
	done := make(chan struct{})
	defer close(done)
	go func() {
		// Owned by this call: it ends with the stream.
		t := time.NewTicker(g.interval)
		defer t.Stop()
		missed := 0
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if g.hasLeader() {
					missed = 0
					continue
				}
				if missed++; missed >= noLeaderChecks {
					lost.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	err := next(srv, &streamWithContext{ServerStream: ss, ctx: ctx})
	if lost.Load() {
		return rpctypes.ErrGRPCNoLeader
	}
	return err
}

// streamWithContext is a server stream whose context the guard can end.
type streamWithContext struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *streamWithContext) Context() context.Context { return s.ctx }
