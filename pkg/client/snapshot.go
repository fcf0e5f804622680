package client

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// SnapshotResponse is an open snapshot stream.
type SnapshotResponse struct {
	Header *pb.ResponseHeader
	// Snapshot reads the database file followed by the 32-byte SHA-256
	// of the file, as the member sent them; close it when done.
	Snapshot io.ReadCloser
	// Version is the storage version of the member's database ("" for an
	// etcd before v3.6).
	Version string
	// Size is the size of the database file, without the digest, as the
	// member announced it.
	Size int64
}

// Snapshot streams the database of the member the client talks to. Make
// the client with that member's endpoint alone: a snapshot is one
// member's point-in-time state.
func (m *maintenance) Snapshot(ctx context.Context) (io.ReadCloser, error) {
	resp, err := m.SnapshotWithVersion(ctx)
	if err != nil {
		return nil, err
	}
	return resp.Snapshot, nil
}

// SnapshotWithVersion is Snapshot with the server's storage version.
func (m *maintenance) SnapshotWithVersion(ctx context.Context) (*SnapshotResponse, error) {
	sctx, cancel := context.WithCancel(ctx)
	ss, err := pb.NewMaintenanceClient(m.c.conn).Snapshot(sctx, &pb.SnapshotRequest{})
	if err != nil {
		cancel()
		return nil, toErr(ctx, err)
	}
	// The first message says whether the member agreed (root only, when
	// auth is on) before the caller starts writing a file.
	first, err := ss.Recv()
	if err != nil {
		cancel()
		return nil, toErr(ctx, err)
	}
	pr, pw := io.Pipe()
	go func() {
		defer cancel()
		for resp := first; ; {
			if _, err := pw.Write(resp.Blob); err != nil {
				return // the reader was closed
			}
			var err error
			if resp, err = ss.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					pw.Close()
				} else {
					pw.CloseWithError(toErr(ctx, err))
				}
				return
			}
		}
	}()
	return &SnapshotResponse{Header: first.GetHeader(), Snapshot: &snapshotReader{pr: pr, cancel: cancel}, Version: first.GetVersion(),
		Size: int64(first.GetRemainingBytes()) + int64(len(first.GetBlob()))}, nil
}

// snapshotReader ends the stream when closed early.
type snapshotReader struct {
	pr     *io.PipeReader
	cancel context.CancelFunc
}

func (r *snapshotReader) Read(p []byte) (int, error) { return r.pr.Read(p) }

func (r *snapshotReader) Close() error {
	r.cancel()
	return r.pr.Close()
}
