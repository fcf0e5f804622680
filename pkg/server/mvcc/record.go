package mvcc

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// indexFields reads from a stored record (a marshalled mvccpb.KeyValue)
// what the key index keeps: the key, its create revision and its version.
// Rebuilding the index at start reads every record; decoding each into a
// KeyValue allocated a copy of every value only to drop it, about as much
// garbage as the database holds data. key aliases rec. Fields of other
// numbers, or of a wire type the field does not have, are skipped, as
// proto.Unmarshal skips them as unknown.
func indexFields(rec []byte) (key []byte, created, ver int64, err error) {
	for len(rec) > 0 {
		num, typ, n := protowire.ConsumeTag(rec)
		if n < 0 {
			return nil, 0, 0, fmt.Errorf("stored key record: %w", protowire.ParseError(n))
		}
		rec = rec[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			key, n = protowire.ConsumeBytes(rec)
		case (num == 2 || num == 4) && typ == protowire.VarintType:
			var x uint64
			x, n = protowire.ConsumeVarint(rec)
			if num == 2 {
				created = int64(x)
			} else {
				ver = int64(x)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, rec)
		}
		if n < 0 {
			return nil, 0, 0, fmt.Errorf("stored key record, field %d: %w", num, protowire.ParseError(n))
		}
		rec = rec[n:]
	}
	return key, created, ver, nil
}
