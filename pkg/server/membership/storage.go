package membership

import (
	"encoding/binary"
	"fmt"
)

// How a member's identity and its cluster's configuration are kept on
// disk. The running server writes them and the offline snapshot restore
// writes them for a data dir the server then starts from, so both take the
// encodings from here.

// DBKey is the key of member id in the database's members bucket.
func DBKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// ConfStateKey is the key, in the database's meta bucket, of the raft
// configuration as of the consistent index, stored as an encoded
// raftpb.ConfState in the same batch as the index.
var ConfStateKey = []byte("conf_state")

// RefusedConfChangePrefix starts the meta keys that mark a membership
// change refused at a raft index (followed by the index, big-endian). They
// speak of one raft log: a restore, which starts a new log, drops them.
var RefusedConfChangePrefix = []byte("refused-conf-change/")

// WALMetadata is what a member's WAL is created with: the member's ID and
// its cluster's, so a restarted member knows who it is without its flags.
func WALMetadata(memberID, clusterID uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, memberID)
	binary.BigEndian.PutUint64(b[8:], clusterID)
	return b
}

// ParseWALMetadata decodes what WALMetadata produced.
func ParseWALMetadata(b []byte) (memberID, clusterID uint64, err error) {
	if len(b) != 16 {
		return 0, 0, fmt.Errorf("wal metadata is %d bytes, want 16", len(b))
	}
	return binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), nil
}
