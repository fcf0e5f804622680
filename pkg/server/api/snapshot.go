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

// snapshotChunk is the size of each message's blob: etcd sends 32 KiB, but
// gRPC encodes a message into a pooled buffer of the next size up that
// holds it and clears the whole buffer first, so a 32 KiB blob plus the
// other fields lands in a 1 MiB buffer and most of a save's server CPU
// went to clearing memory (46% of the profile). Leaving room for the other
// fields keeps each message in the 32 KiB buffers. Clients only
// concatenate blobs, so the size is not part of the protocol.
const snapshotChunk = 32*1024 - 64

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
