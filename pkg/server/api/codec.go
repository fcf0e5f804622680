package api

import (
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// passThroughCodec is the gRPC server's codec: gRPC's own proto codec,
// except that a message with no field set and only unknown fields is sent
// as those bytes, without copying them. proto.Marshal writes exactly those
// bytes for such a message, so what clients receive does not change; what
// changes is that an answer encoded ahead of time (see preEncoded) reaches
// the connection without a second, equally large, copy.
type passThroughCodec struct{ encoding.CodecV2 }

// serverCodec is what the gRPC server encodes and decodes with.
var serverCodec = passThroughCodec{encoding.GetCodecV2(protocodec.Name)}

func (c passThroughCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(proto.Message); ok {
		if raw, ok := onlyUnknown(m.ProtoReflect()); ok {
			return mem.BufferSlice{answerBuffer(raw)}, nil
		}
	}
	return c.CodecV2.Marshal(v)
}

// onlyUnknown returns a message's unknown fields if it has nothing else.
func onlyUnknown(m protoreflect.Message) ([]byte, bool) {
	raw := m.GetUnknown()
	if len(raw) == 0 {
		return nil, false
	}
	set := false
	m.Range(func(protoreflect.FieldDescriptor, protoreflect.Value) bool {
		set = true
		return false
	})
	return raw, !set
}

// preEncoded makes m, an empty message of the answer's type, carry b, the
// answer already encoded: gRPC then sends b as it is (see passThroughCodec),
// and any other marshaller writes b too.
func preEncoded[M proto.Message](m M, b []byte) M {
	m.ProtoReflect().SetUnknown(b)
	return m
}
