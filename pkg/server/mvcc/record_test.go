package mvcc

import (
	"bytes"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// TestIndexFields checks that reading a record's key, create revision and
// version without decoding it agrees with proto.Unmarshal, for records in
// any order, with unknown fields, and with a field of an unexpected wire
// type, and that both refuse a truncated record.
func TestIndexFields(t *testing.T) {
	marshal := func(kv *mvccpb.KeyValue) []byte {
		b, err := proto.Marshal(kv)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var reordered []byte
	reordered = protowire.AppendTag(reordered, 4, protowire.VarintType)
	reordered = protowire.AppendVarint(reordered, 3)
	reordered = protowire.AppendTag(reordered, 5, protowire.BytesType)
	reordered = protowire.AppendBytes(reordered, []byte("v"))
	reordered = protowire.AppendTag(reordered, 1, protowire.BytesType)
	reordered = protowire.AppendBytes(reordered, []byte("first"))
	reordered = protowire.AppendTag(reordered, 2, protowire.VarintType)
	reordered = protowire.AppendVarint(reordered, 11)
	reordered = protowire.AppendTag(reordered, 1, protowire.BytesType) // the last key wins
	reordered = protowire.AppendBytes(reordered, []byte("second"))
	unknown := protowire.AppendTag(marshal(&mvccpb.KeyValue{Key: []byte("k"), CreateRevision: 4, Version: 2}), 12, protowire.Fixed32Type)
	unknown = protowire.AppendFixed32(unknown, 7)
	wrongType := protowire.AppendTag(marshal(&mvccpb.KeyValue{Key: []byte("k"), Version: 2}), 2, protowire.BytesType)
	wrongType = protowire.AppendBytes(wrongType, []byte("not a varint"))
	full := marshal(&mvccpb.KeyValue{Key: []byte("key"), CreateRevision: 5, ModRevision: 9, Version: 4, Value: bytes.Repeat([]byte("x"), 300), Lease: 12})

	for _, c := range []struct {
		name string
		rec  []byte
	}{
		{"full", full},
		{"tombstone", marshal(&mvccpb.KeyValue{Key: []byte("gone")})},
		{"reordered", reordered},
		{"unknown field", unknown},
		{"wrong wire type", wrongType},
		{"truncated", full[:len(full)-10]},
		{"bad tag", []byte{0x80}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := new(mvccpb.KeyValue)
			werr := proto.Unmarshal(c.rec, want)
			key, created, ver, err := indexFields(c.rec)
			if (err != nil) != (werr != nil) {
				t.Fatalf("error %v, proto.Unmarshal's %v", err, werr)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(key, want.Key) || created != want.CreateRevision || ver != want.Version {
				t.Fatalf("got key %q created %d version %d, want %q %d %d", key, created, ver, want.Key, want.CreateRevision, want.Version)
			}
		})
	}
}
