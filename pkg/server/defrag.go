package server

import (
	"context"
	"fmt"
)

// Defragment rewrites this member's database into a compact file. Unlike
// etcd's, the member keeps applying and serving meanwhile; only the swap
// at the end holds reads and writes back, briefly. Only root may ask
// when auth is on, as in etcd.
func (s *Server) Defragment(ctx context.Context) error {
	if err := s.checkAdmin(ctx); err != nil {
		return err
	}
	st, err := s.be.Defrag(ctx)
	if err != nil {
		s.lg.Warn("defragment failed", "err", err)
		return fmt.Errorf("defragment: %w", err)
	}
	s.lg.Info("defragmented", "size-before", st.SizeBefore, "size-after", st.SizeAfter,
		"took", st.Total, "copy", st.Copy, "pause", st.Pause, "catch-up-rounds", st.Rounds, "replayed", st.Replayed)
	return nil
}
