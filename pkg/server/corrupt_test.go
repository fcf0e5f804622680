package server

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func hashResp(rev, compactRev int64, hash uint32) *pb.HashKVResponse {
	return &pb.HashKVResponse{Header: &pb.ResponseHeader{Revision: rev}, Hash: hash, CompactRevision: compactRev}
}

// TestCorruptVerdict decides as etcd's periodic check: only a peer at the
// leader's compaction is compared by hash; one compacted less is not
// accused; one ahead of the leader, or compacted further, is; unanswered
// peers are skipped; the leader accuses itself when its own hash at the
// same revision changed.
func TestCorruptVerdict(t *testing.T) {
	leader := localHash{hash: 111, rev: 20, compactRev: 10, currentRev: 20}
	later := localHash{hash: 222, rev: 22, compactRev: 10, currentRev: 22}
	tests := []struct {
		name   string
		h2     localHash
		peers  []peerHash
		accuse uint64
	}{
		{"all agree", leader, []peerHash{{id: 2, resp: hashResp(20, 10, 111)}, {id: 3, resp: hashResp(20, 10, 111)}}, 0},
		{"hash differs", leader, []peerHash{{id: 2, resp: hashResp(20, 10, 111)}, {id: 3, resp: hashResp(20, 10, 999)}}, 3},
		{"peer compacted less: not compared", leader, []peerHash{{id: 2, resp: hashResp(20, 5, 999)}}, 0},
		{"peer compacted further", leader, []peerHash{{id: 2, resp: hashResp(20, 15, 111)}}, 2},
		{"peer compacted meanwhile, as the leader did", localHash{hash: 333, rev: 22, compactRev: 15, currentRev: 22},
			[]peerHash{{id: 2, resp: hashResp(20, 15, 444)}}, 0},
		{"peer ahead of the leader", leader, []peerHash{{id: 2, resp: hashResp(25, 10, 111)}}, 2},
		{"leader moved on meanwhile", later, []peerHash{{id: 2, resp: hashResp(22, 10, 111)}}, 0},
		{"unanswered and behind peers skipped", leader, []peerHash{{id: 2, err: rpctypes.ErrFutureRev}, {id: 3, err: rpctypes.ErrCompacted}}, 0},
		{"own hash changed", localHash{hash: 112, rev: 20, compactRev: 10, currentRev: 20}, []peerHash{{id: 2, resp: hashResp(20, 10, 111)}}, 1},
	}
	for _, tt := range tests {
		if got, why := corruptVerdict(1, leader, tt.h2, tt.peers); got != tt.accuse {
			t.Errorf("%s: accused %d (%s), want %d", tt.name, got, why, tt.accuse)
		}
	}
}
