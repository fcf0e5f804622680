package api

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// This file writes RangeResponses on the wire straight from the records the
// store keeps, each a marshalled mvccpb.KeyValue. Decoding every record
// into a KeyValue only for gRPC to marshal it again held two copies of a
// large answer (plus the garbage of 100,000 small objects) per reader; the
// answer written here is the only copy, sized exactly before it is filled.
//
// The bytes must be those proto.Marshal gives for the RangeResponse the
// decoding path builds, so that no client can tell the paths apart. A record
// is copied as it is only when it is in the form proto.Marshal itself
// writes (fields in order, each once, none with a zero value, minimal
// varints, no unknown fields); any other record is decoded and marshalled
// again, as the decoding path would.

// Field numbers, from etcd's rpc.proto and kv.proto.
const (
	fieldStreamRange = 1 // RangeStreamResponse.range_response

	fieldRespHeader = 1 // RangeResponse.header
	fieldRespKvs    = 2
	fieldRespMore   = 3
	fieldRespCount  = 4

	fieldHdrCluster = 1 // ResponseHeader
	fieldHdrMember  = 2
	fieldHdrRev     = 3
	fieldHdrTerm    = 4

	fieldKVKey   = 1 // KeyValue
	fieldKVValue = 5
	fieldKVLease = 6
)

// kvLayout is where a canonical record keeps its key and its value field.
type kvLayout struct {
	key               []byte
	valueAt, valueEnd int // the value field, tag included; equal if none
	canonical         bool
}

// layoutOf parses a stored record without copying it. canonical is false
// for a record proto.Marshal would not write byte for byte as it is.
func layoutOf(v []byte) kvLayout {
	var l kvLayout
	last := protowire.Number(0)
	for at := 0; at < len(v); {
		// Every KeyValue field number is below 16: its tag is one byte.
		num, typ := protowire.Number(v[at]>>3), protowire.Type(v[at]&7)
		if v[at]&0x80 != 0 || num <= last || num > fieldKVLease {
			return kvLayout{}
		}
		last = num
		start := at
		at++
		if num == fieldKVKey || num == fieldKVValue {
			b, n := protowire.ConsumeBytes(v[at:])
			if typ != protowire.BytesType || n <= 0 || len(b) == 0 || protowire.SizeVarint(uint64(len(b))) != n-len(b) {
				return kvLayout{}
			}
			at += n
			if num == fieldKVKey {
				l.key = b
			} else {
				l.valueAt, l.valueEnd = start, at
			}
			continue
		}
		x, n := protowire.ConsumeVarint(v[at:])
		if typ != protowire.VarintType || n <= 0 || x == 0 || protowire.SizeVarint(x) != n {
			return kvLayout{}
		}
		at += n
	}
	l.canonical = true
	return l
}

// remarshal decodes a record proto.Marshal would not write as it is and
// marshals it again, as the decoding path does.
func remarshal(v []byte, keysOnly bool) ([]byte, *mvccpb.KeyValue, error) {
	kv := new(mvccpb.KeyValue)
	if err := proto.Unmarshal(v, kv); err != nil {
		return nil, nil, fmt.Errorf("decode stored key: %w", err)
	}
	if keysOnly {
		kv.Value = nil
	}
	b, err := proto.Marshal(kv)
	return b, kv, err
}

// rangeAnswer is a RangeResponse to encode from stored records.
type rangeAnswer struct {
	hdr      *pb.ResponseHeader // nil for none
	vals     [][]byte           // stored records, in answer order
	keysOnly bool
	more     bool
	count    int64
}

// kvSize is the size of the KeyValue message sent for v.
func (a *rangeAnswer) kvSize(v []byte) (int, error) {
	l := layoutOf(v)
	if !l.canonical {
		b, _, err := remarshal(v, a.keysOnly)
		return len(b), err
	}
	if a.keysOnly {
		return len(v) - (l.valueEnd - l.valueAt), nil
	}
	return len(v), nil
}

func appendKV(b, v []byte, keysOnly bool) ([]byte, error) {
	l := layoutOf(v)
	if !l.canonical {
		m, _, err := remarshal(v, keysOnly)
		if err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, fieldRespKvs, protowire.BytesType)
		return protowire.AppendBytes(b, m), nil
	}
	b = protowire.AppendTag(b, fieldRespKvs, protowire.BytesType)
	if !keysOnly {
		return protowire.AppendBytes(b, v), nil
	}
	b = protowire.AppendVarint(b, uint64(len(v)-(l.valueEnd-l.valueAt)))
	return append(append(b, v[:l.valueAt]...), v[l.valueEnd:]...), nil
}

func headerSize(h *pb.ResponseHeader) int {
	n := 0
	for _, x := range []uint64{h.ClusterId, h.MemberId, uint64(h.Revision), h.RaftTerm} {
		if x != 0 {
			n += 1 + protowire.SizeVarint(x)
		}
	}
	return n
}

func appendHeader(b []byte, h *pb.ResponseHeader) []byte {
	b = protowire.AppendTag(b, fieldRespHeader, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(headerSize(h)))
	for _, f := range []struct {
		num protowire.Number
		x   uint64
	}{{fieldHdrCluster, h.ClusterId}, {fieldHdrMember, h.MemberId}, {fieldHdrRev, uint64(h.Revision)}, {fieldHdrTerm, h.RaftTerm}} {
		if f.x != 0 {
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, f.x)
		}
	}
	return b
}

// size is the encoded RangeResponse's size.
func (a *rangeAnswer) size() (int, error) {
	n := 0
	if a.hdr != nil {
		hs := headerSize(a.hdr)
		n += 1 + protowire.SizeVarint(uint64(hs)) + hs
	}
	for _, v := range a.vals {
		s, err := a.kvSize(v)
		if err != nil {
			return 0, err
		}
		n += 1 + protowire.SizeBytes(s)
	}
	if a.more {
		n += 2
	}
	if a.count != 0 {
		n += 1 + protowire.SizeVarint(uint64(a.count))
	}
	return n, nil
}

// appendTo appends the encoded RangeResponse, fields in the order
// proto.Marshal writes them.
func (a *rangeAnswer) appendTo(b []byte) ([]byte, error) {
	if a.hdr != nil {
		b = appendHeader(b, a.hdr)
	}
	for _, v := range a.vals {
		var err error
		if b, err = appendKV(b, v, a.keysOnly); err != nil {
			return nil, err
		}
	}
	if a.more {
		b = protowire.AppendTag(b, fieldRespMore, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	if a.count != 0 {
		b = protowire.AppendTag(b, fieldRespCount, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.count))
	}
	return b, nil
}

// encodeStream returns the RangeStreamResponse carrying the answer as its
// range_response, in a buffer from spares.
func (a *rangeAnswer) encodeStream(spares *chunkSpares) ([]byte, error) {
	n, err := a.size()
	if err != nil {
		return nil, err
	}
	b := spares.take(1 + protowire.SizeVarint(uint64(n)) + n)
	b = protowire.AppendTag(b, fieldStreamRange, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	return a.appendTo(b)
}

// keyOf is the key of a stored record.
func keyOf(v []byte) ([]byte, error) {
	if l := layoutOf(v); l.canonical {
		return l.key, nil
	}
	_, kv, err := remarshal(v, true)
	if err != nil {
		return nil, err
	}
	return kv.Key, nil
}
