package lease

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// A lease is stored as etcd stores it, a leasepb.Lease message (ID = 1,
// TTL = 2, RemainingTTL = 3, each an int64), so a database moves between
// etcd and kvd with its leases. The message is small enough to write by
// hand, which spares a dependency on etcd's server module.

const (
	fieldID        = 1
	fieldTTL       = 2
	fieldRemaining = 3
)

func encodeRecord(id, ttl, remaining int64) []byte {
	b := make([]byte, 0, 3*(1+protowire.SizeVarint(uint64(id))))
	for _, f := range []struct {
		num protowire.Number
		v   int64
	}{{fieldID, id}, {fieldTTL, ttl}, {fieldRemaining, remaining}} {
		if f.v == 0 {
			continue // proto3 leaves zero values out
		}
		b = protowire.AppendTag(b, f.num, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(f.v))
	}
	return b
}

func decodeRecord(b []byte) (id, ttl, remaining int64, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, 0, fmt.Errorf("lease record: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.VarintType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, 0, 0, fmt.Errorf("lease record field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return 0, 0, 0, fmt.Errorf("lease record field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case fieldID:
			id = int64(v)
		case fieldTTL:
			ttl = int64(v)
		case fieldRemaining:
			remaining = int64(v)
		}
	}
	return id, ttl, remaining, nil
}
