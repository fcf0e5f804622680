package server

import (
	"context"
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/compactor"
)

// startAutoCompaction runs the compactor the flags ask for, if any, until
// the member stops.
func (s *Server) startAutoCompaction() {
	if s.cfg.autoCompaction == 0 {
		return
	}
	cfg := compactor.Config{
		Mode:             s.cfg.AutoCompactionMode,
		Retention:        s.cfg.autoCompaction,
		RevisionInterval: s.cfg.AutoCompactionCheckInterval,
		Rev:              s.Rev,
		IsLeader:         s.isLeader,
		Compact:          s.autoCompact,
		Logger:           s.lg,
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := compactor.Run(cfg, s.stopc); err != nil {
			s.lg.Error("auto-compaction not started", "err", err)
		}
	}()
}

// autoCompact proposes a compaction as any client's. With auth enabled
// kvd lets only root compact, so the member's own compactions are made
// in root's name (etcd's compactor skips the check altogether).
func (s *Server) autoCompact(ctx context.Context, rev int64) error {
	ctx = auth.WithInfo(ctx, auth.Info{User: "root"})
	_, err := s.Compact(ctx, &pb.CompactionRequest{Revision: rev})
	if errors.Is(err, rpctypes.ErrGRPCCompacted) {
		return nil
	}
	return err
}
