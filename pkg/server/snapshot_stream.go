package server

import (
	"context"
	"time"

	"github.com/kvd-io/kvd/pkg/server/api"
	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/version"
)

// storageVersionKey is where etcd records, in the meta bucket, the storage
// version a database file was last written at; a snapshot stream reports
// it.
var storageVersionKey = []byte("storageVersion")

// Snapshot freezes the database for Maintenance.Snapshot, to root alone
// when auth is on, as etcd. What was applied is committed first, so the
// copy holds every write acknowledged before the call; the copy is read
// from its own transaction, so writers go on while it streams.
func (s *Server) Snapshot(ctx context.Context) (api.DBSnapshot, error) {
	if err := s.checkAdmin(ctx); err != nil {
		return nil, err
	}
	s.be.ForceCommit()
	snap, err := s.be.OpenSnapshot()
	if err != nil {
		return nil, err
	}
	v := string(snap.Get(backend.Meta, storageVersionKey))
	if v == "" {
		v = version.ClusterVersion
	}
	return streamedDB{DBSnapshot: snap, version: v, opened: time.Now(), observe: s.metrics.ObserveBackendSnapshot}, nil
}

type streamedDB struct {
	*backend.DBSnapshot
	version string
	opened  time.Time
	observe func(time.Duration)
}

func (d streamedDB) Version() string { return d.version }

// Close ends the stream's read transaction; how long the database was
// held open for it is what kvd_disk_backend_snapshot_duration_seconds
// shows.
func (d streamedDB) Close() error {
	d.observe(time.Since(d.opened))
	return d.DBSnapshot.Close()
}
