package api

import (
	"bytes"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// TestPassThroughCodec checks that a pre-encoded answer leaves the codec as
// the very bytes it was given (no copy), and that every other message is
// marshalled, and decoded, as gRPC's proto codec does.
func TestPassThroughCodec(t *testing.T) {
	full := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 9, ClusterId: 1}, Count: 2, More: true,
		Kvs: []*mvccpb.KeyValue{{Key: []byte("a"), Value: []byte("1"), ModRevision: 3}, {Key: []byte("b")}}}
	enc, err := proto.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}

	out, err := serverCodec.Marshal(preEncoded(&pb.RangeResponse{}, enc))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || !bytes.Equal(out[0].ReadOnlyData(), enc) || &out[0].ReadOnlyData()[0] != &enc[0] {
		t.Fatalf("pre-encoded answer was not passed through as it is: %d buffers", len(out))
	}
	back := new(pb.RangeResponse)
	if err := serverCodec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(enc)}, back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back, full) {
		t.Fatalf("decoded %v, want %v", back, full)
	}

	mixed := proto.Clone(full).(*pb.RangeResponse)
	mixed.ProtoReflect().SetUnknown(enc[:2])
	for _, m := range []proto.Message{full, mixed, &pb.PutResponse{}, &pb.RangeResponse{}} {
		want, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := serverCodec.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want) {
			t.Fatalf("%T: codec wrote %x, proto.Marshal %x", m, got.Materialize(), want)
		}
	}
}
