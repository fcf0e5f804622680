package lease

import (
	"encoding/hex"
	"testing"
)

// The wants are what etcd v3.7.3's leasepb.Lease marshals to for the same
// fields, so a lease written by either is read by the other.
func TestRecordIsEtcdLeasepb(t *testing.T) {
	tests := []struct {
		id, ttl, remaining int64
		want               string
	}{
		{7587862072939419904, 60, 42, "0880b2dab1a68be0a669103c182a"},
		{1, 5, 0, "08011005"},
		{-3, 0, -1, "08fdffffffffffffffff0118ffffffffffffffffff01"},
	}
	for _, tt := range tests {
		got := encodeRecord(tt.id, tt.ttl, tt.remaining)
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("encodeRecord(%d, %d, %d) = %x, want %s", tt.id, tt.ttl, tt.remaining, got, tt.want)
		}
		b, _ := hex.DecodeString(tt.want)
		id, ttl, remaining, err := decodeRecord(b)
		if err != nil || id != tt.id || ttl != tt.ttl || remaining != tt.remaining {
			t.Errorf("decodeRecord(%s) = %d, %d, %d, %v", tt.want, id, ttl, remaining, err)
		}
	}
	if _, _, _, err := decodeRecord([]byte{0x08}); err == nil {
		t.Error("a truncated record decodes")
	}
}
