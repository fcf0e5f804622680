package server

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// decode gives the request an entry carries and its header ID. A request
// proposed on this member is handed over as its caller built it, when the
// entry holds exactly what that request encoded to; the others (a
// follower's, one from before a restart, one whose caller gave up and
// withdrew it) are decoded.
func (w *waitRegistry) decode(data []byte) (*pb.InternalRaftRequest, uint64, error) {
	if id, ok := requestID(data); ok {
		if r := w.request(id, data); r != nil {
			return r, id, nil
		}
	}
	r := new(pb.InternalRaftRequest)
	if err := proto.Unmarshal(data, r); err != nil {
		return nil, 0, err
	}
	return r, r.GetHeader().GetID(), nil
}

// Where an InternalRaftRequest keeps the ID of its header.
const (
	headerField   protowire.Number = 100
	headerIDField protowire.Number = 1
)

// requestID reads the header ID of an encoded InternalRaftRequest without
// decoding the rest: it steps over the top-level fields to the header and
// reads the ID in it. Like a decoder, it keeps the last value of a field
// that occurs more than once. ok is false when data is malformed or has no
// ID; the ID is then 0, which no proposal uses.
func requestID(data []byte) (id uint64, ok bool) {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return 0, false
		}
		data = data[n:]
		if num == headerField && typ == protowire.BytesType {
			hdr, m := protowire.ConsumeBytes(data)
			if m < 0 {
				return 0, false
			}
			if v, found, good := headerID(hdr); !good {
				return 0, false
			} else if found {
				id, ok = v, true
			}
			data = data[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, data)
		if m < 0 {
			return 0, false
		}
		data = data[m:]
	}
	return id, ok
}

// headerID reads field 1 of an encoded RequestHeader.
func headerID(hdr []byte) (id uint64, found, ok bool) {
	for len(hdr) > 0 {
		num, typ, n := protowire.ConsumeTag(hdr)
		if n < 0 {
			return 0, false, false
		}
		hdr = hdr[n:]
		if num == headerIDField && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(hdr)
			if m < 0 {
				return 0, false, false
			}
			id, found = v, true
			hdr = hdr[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, hdr)
		if m < 0 {
			return 0, false, false
		}
		hdr = hdr[m:]
	}
	return id, found, true
}
