package server

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRequestID: the ID read by skipping through the encoding is the one
// a full decode finds in the header, whatever precedes or follows it, and
// malformed or header-less entries give none.
func TestRequestID(t *testing.T) {
	big := make([]byte, 300)
	for _, tc := range []struct {
		name string
		r    *pb.InternalRaftRequest
	}{
		{"put", &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 0x1234_5678_9abc_def0}, Put: &pb.PutRequest{Key: []byte("k"), Value: big}}},
		{"header with user", &pb.InternalRaftRequest{Header: &pb.RequestHeader{Username: "root", ID: 7, AuthRevision: 3}, DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}},
		{"txn", &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1 << 63}, Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("x")}}}}}}},
		{"member attrs", &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 99}, ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{Member_ID: 5}}},
		{"lease checkpoint", &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1}, LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{{ID: 3, Remaining_TTL: 4}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := mustMarshal(t, tc.r)
			id, ok := requestID(data)
			if !ok || id != tc.r.GetHeader().GetID() {
				t.Fatalf("requestID = %d, %v; want %d", id, ok, tc.r.GetHeader().GetID())
			}
		})
	}

	// A header written before the body, and a second header merging into
	// the first, as a decoder reads them.
	hdr := mustMarshal(t, &pb.RequestHeader{ID: 11, Username: "u"})
	second := mustMarshal(t, &pb.RequestHeader{ID: 12})
	noID := mustMarshal(t, &pb.RequestHeader{Username: "v"})
	body := mustMarshal(t, &pb.PutRequest{Key: []byte("k")})
	build := func(parts ...[]byte) []byte {
		var b []byte
		for i := 0; i < len(parts); i += 2 {
			num := protowire.Number(parts[i][0])
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendBytes(b, parts[i+1])
		}
		return b
	}
	fieldPut := []byte{4}
	fieldHeader := []byte{100}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"header first", build(fieldHeader, hdr, fieldPut, body)},
		{"two headers", build(fieldHeader, hdr, fieldPut, body, fieldHeader, second)},
		{"later header without ID", build(fieldHeader, hdr, fieldHeader, noID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r pb.InternalRaftRequest
			if err := proto.Unmarshal(tc.data, &r); err != nil {
				t.Fatal(err)
			}
			if id, ok := requestID(tc.data); !ok || id != r.GetHeader().GetID() {
				t.Fatalf("requestID = %d, %v; decoder says %d", id, ok, r.GetHeader().GetID())
			}
		})
	}

	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"no header", mustMarshal(t, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k")}})},
		{"header without ID", build(fieldHeader, noID)},
		{"truncated", mustMarshal(t, &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 5}, Put: &pb.PutRequest{Key: []byte("key")}})[:4]},
		{"bad tag", []byte{0xff, 0xff, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if id, ok := requestID(tc.data); ok {
				t.Fatalf("requestID = %d, true; want none", id)
			}
		})
	}
}

// TestDecodeUsesRegisteredRequest: the apply loop gets the very request a
// caller on this member registered, with no decoding, when the entry is
// that request's encoding; without a registration (a follower, a restart,
// a caller that gave up), or when the bytes differ though the ID is the
// same (another member's request with a colliding ID), it decodes.
func TestDecodeUsesRegisteredRequest(t *testing.T) {
	const id = 42
	req := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: id}, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}}
	data := mustMarshal(t, req)
	other := mustMarshal(t, &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: id}, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("w")}})

	var w waitRegistry
	w.registerRequest(id, req, data)

	got, gotID, err := w.decode(data)
	if err != nil || gotID != id {
		t.Fatalf("decode = %v, %d, %v", got, gotID, err)
	}
	if got != req {
		t.Fatal("decode of a registered request's own entry decoded it again instead of handing over the registered request")
	}
	// A copy of the bytes, as a follower's proposal comes back from the
	// leader, is the same entry.
	if got, _, _ := w.decode(append([]byte(nil), data...)); got != req {
		t.Fatal("an equal copy of the entry was not matched to its registration")
	}

	got, gotID, err = w.decode(other)
	if err != nil || gotID != id || got == req || string(got.GetPut().GetValue()) != "w" {
		t.Fatalf("entry with a colliding ID: got %v, %d, %v; want its own decoding", got, gotID, err)
	}

	w.cancel(id)
	got, gotID, err = w.decode(data)
	if err != nil || gotID != id || got == req || !proto.Equal(got, req) {
		t.Fatalf("after the waiter left: got %v, %d, %v; want a fresh decoding equal to the request", got, gotID, err)
	}

	// A registration without a request (a membership change) never
	// stands in for an entry.
	w.register(id)
	if got, _, _ := w.decode(data); got == nil || got == req || !proto.Equal(got, req) {
		t.Fatalf("registration without request: got %v", got)
	}

	if _, _, err := w.decode([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Fatal("a malformed entry decoded without error")
	}
}
