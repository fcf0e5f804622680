package main

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

// TestDigestCheck: save's check holds back the last 32 bytes as the digest
// and hashes the rest, however the stream is cut into writes.
func TestDigestCheck(t *testing.T) {
	db := bytes.Repeat([]byte("database page "), 5000)
	sum := sha256.Sum256(db)
	good := append(bytes.Clone(db), sum[:]...)
	bad := bytes.Clone(good)
	bad[100] ^= 1
	for _, chunk := range []int{1, 7, 31, 32, 33, 1000, 32 * 1024, len(good)} {
		for _, tc := range []struct {
			name   string
			stream []byte
			ok     bool
		}{{"intact", good, true}, {"changed", bad, false}, {"digest cut", good[:len(good)-1], false}} {
			d := newDigestCheck()
			for i := 0; i < len(tc.stream); i += chunk {
				if _, err := d.Write(tc.stream[i:min(i+chunk, len(tc.stream))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.verify(); (err == nil) != tc.ok {
				t.Errorf("%s in writes of %d bytes: verify() = %v", tc.name, chunk, err)
			}
		}
	}
}
