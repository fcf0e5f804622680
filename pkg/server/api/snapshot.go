package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Snapshots is what Maintenance.Snapshot needs from a member: its
// database, frozen. A Maintenance that cannot give one leaves the call
// unimplemented.
type Snapshots interface {
	// Snapshot commits what is pending and freezes the database as it
	// then is; writes go on meanwhile. The caller closes it.
	Snapshot(ctx context.Context) (DBSnapshot, error)
}

// DBSnapshot is a frozen database file.
type DBSnapshot interface {
	// Size is what WriteTo writes, in bytes.
	Size() int64
	// Version is the storage version the file records, or "".
	Version() string
	WriteTo(w io.Writer) (int64, error)
	Close() error
}

// snapshotChunk is the size of each message's blob, as etcd sends: small
// enough for any client's receive limit, large enough to stream fast.
const snapshotChunk = 32 * 1024

var errSnapshotAbandoned = errors.New("snapshot stream abandoned")

// Snapshot streams the member's database file in chunks, each saying how
// many bytes remain after it, then one more message whose blob is the
// SHA-256 of everything sent, which clients append to the file so that a
// restore can check it. A client compares RemainingBytes with nothing; it
// knows the file is whole from the digest.
func (s *maintenanceService) Snapshot(_ *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	src, ok := s.m.(Snapshots)
	if !ok {
		return status.Error(codes.Unimplemented, "method Snapshot not implemented")
	}
	snap, err := src.Snapshot(srv.Context())
	if err != nil {
		return toStatus(err)
	}
	defer snap.Close()

	pr, pw := io.Pipe()
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, err := snap.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	// However the stream ends, the writer stops before the snapshot closes.
	defer func() {
		pr.CloseWithError(errSnapshotAbandoned)
		<-written
	}()

	total, version := snap.Size(), snap.Version()
	h := sha256.New()
	for sent := int64(0); sent < total; {
		// gRPC may still hold a sent message's blob: each gets its own.
		buf := make([]byte, min(snapshotChunk, total-sent))
		n, err := io.ReadFull(pr, buf)
		if err != nil {
			return status.Error(codes.Internal, fmt.Sprintf("read database snapshot at byte %d of %d: %v", sent, total, err))
		}
		sent += int64(n)
		h.Write(buf)
		if err := srv.Send(&pb.SnapshotResponse{RemainingBytes: uint64(total - sent), Blob: buf, Version: version}); err != nil {
			return err
		}
	}
	return srv.Send(&pb.SnapshotResponse{Blob: h.Sum(nil), Version: version})
}
