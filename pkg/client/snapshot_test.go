package client

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// snapshotServer streams data in chunks of 1000 bytes, then digest, or
// refuses with refuse; it reports on ended when a stream's context ends.
type snapshotServer struct {
	pb.UnimplementedMaintenanceServer
	data, digest []byte
	refuse       error
	ended        chan struct{}
}

func (s *snapshotServer) Snapshot(_ *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	if s.refuse != nil {
		return s.refuse
	}
	defer close(s.ended)
	for sent := 0; sent < len(s.data); {
		n := min(1000, len(s.data)-sent)
		sent += n
		err := srv.Send(&pb.SnapshotResponse{RemainingBytes: uint64(len(s.data) - sent), Blob: s.data[sent-n : sent], Version: "3.7.0"})
		if err != nil {
			return err
		}
	}
	if err := srv.Send(&pb.SnapshotResponse{Blob: s.digest, Version: "3.7.0"}); err != nil {
		return err
	}
	// A client that stops reading ends the stream by its context.
	<-srv.Context().Done()
	return nil
}

func serveSnapshots(t *testing.T, s *snapshotServer) *Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterMaintenanceServer(srv, s)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return newTestClient(t, Config{Endpoints: []string{l.Addr().String()}})
}

// TestSnapshotReadsStream: the reader yields every blob in order, the
// digest last, with the version and the size the first message announced.
func TestSnapshotReadsStream(t *testing.T) {
	s := &snapshotServer{data: bytes.Repeat([]byte("0123456789"), 2550), digest: bytes.Repeat([]byte{7}, 32), ended: make(chan struct{})}
	c := serveSnapshots(t, s)
	resp, err := c.SnapshotWithVersion(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Version != "3.7.0" || resp.Size != int64(len(s.data)) {
		t.Errorf("version %q, size %d; want 3.7.0 and %d", resp.Version, resp.Size, len(s.data))
	}
	got := make([]byte, len(s.data)+len(s.digest))
	if _, err := io.ReadFull(resp.Snapshot, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(bytes.Clone(s.data), s.digest...)) {
		t.Fatal("the stream's bytes differ from what the server sent")
	}
	// Closing early (the server waits for it) ends the stream.
	if err := resp.Snapshot.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's stream did not end after Close")
	}
}

// TestSnapshotRefused: a refusal is the call's error, as etcd's error value.
func TestSnapshotRefused(t *testing.T) {
	c := serveSnapshots(t, &snapshotServer{refuse: rpctypes.ErrGRPCPermissionDenied})
	r, err := c.Snapshot(testCtx(t))
	if !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("got %v, %v; want permission denied", r, err)
	}
}
