package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kvd-io/kvd/tests/framework"
)

// hashStep is one step of the history both servers go through: a put or
// a deletion of key, or else a compaction back by the given number of
// revisions from the current one.
type hashStep struct {
	put, del string
	back     int64
}

// TestHashKVMatchesEtcd drives etcd v3.7.3 and kvd through the same
// random history of puts, overwrites, deletions and compactions (to
// revision 0, at the current revision, which may be a deletion, and a few
// revisions back, which leaves older rows the hash must skip) and
// requires HashKV to give the same hash, hash revision and compaction
// revision on both, at every revision still readable, after every step.
func TestHashKVMatchesEtcd(t *testing.T) {
	framework.RequireBin(t, framework.EtcdBin())
	etcd := dialRaw(t, framework.StartEtcd(t))
	kvd := dialRaw(t, framework.StartKvd(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rng := rand.New(rand.NewSource(7))
	var rev, compacted int64 = 1, -1
	live := map[string]bool{}
	check := func(i int, st hashStep) {
		for r := max(compacted, 1); r <= rev; r++ {
			want, got := etcd.hash(ctx, t, r), kvd.hash(ctx, t, r)
			if got != want {
				t.Fatalf("after step %d (%+v), HashKV at revision %d: kvd %+v, etcd %+v", i, st, r, got, want)
			}
		}
	}
	check(-1, hashStep{})
	for i := 0; i < 80; i++ {
		key := fmt.Sprintf("k%d", rng.Intn(8))
		st := hashStep{put: key}
		switch {
		case i == 3:
			st = hashStep{back: rev} // compaction 0
		case i == 44:
			st = hashStep{del: "\x00"} // every key, so a compaction keeps none
		case i == 45:
			st = hashStep{back: 0}
		case i%15 == 13:
			for k := range live {
				st = hashStep{del: k} // so the next compaction is at a deletion
				break
			}
		case i%15 == 14:
			st = hashStep{back: 0}
		case i%7 == 6:
			st = hashStep{back: 3}
		case rng.Intn(4) == 0:
			st = hashStep{del: key}
		}
		if st.put == "" && st.del == "" && rev-st.back <= compacted {
			continue
		}
		r1, r2 := etcd.do(ctx, t, st, rev), kvd.do(ctx, t, st, rev)
		if r1 != r2 {
			t.Fatalf("step %d (%+v): etcd at revision %d, kvd at %d", i, st, r1, r2)
		}
		switch {
		case st.put != "":
			live[st.put] = true
		case st.del == "\x00":
			clear(live)
		case st.del != "":
			delete(live, st.del)
		default:
			compacted = rev - st.back
		}
		rev = r1
		check(i, st)
	}
}

// do runs st and returns the revision the server is at afterwards.
func (c rawMember) do(ctx context.Context, t *testing.T, st hashStep, rev int64) int64 {
	t.Helper()
	var hdr *pb.ResponseHeader
	switch {
	case st.put != "":
		resp, err := c.kv.Put(ctx, &pb.PutRequest{Key: []byte(st.put), Value: []byte(fmt.Sprintf("v%d", rev))})
		if err != nil {
			t.Fatalf("%+v: %v", st, err)
		}
		hdr = resp.Header
	case st.del != "":
		req := &pb.DeleteRangeRequest{Key: []byte(st.del)}
		if st.del == "\x00" {
			req.RangeEnd = []byte{0}
		}
		resp, err := c.kv.DeleteRange(ctx, req)
		if err != nil {
			t.Fatalf("%+v: %v", st, err)
		}
		hdr = resp.Header
	default:
		resp, err := c.kv.Compact(ctx, &pb.CompactionRequest{Revision: rev - st.back, Physical: true})
		if err != nil {
			t.Fatalf("%+v: %v", st, err)
		}
		hdr = resp.Header
	}
	return hdr.Revision
}

type hashAnswer struct {
	hash                        uint32
	compactRev, hashRev, header int64
}

func (c rawMember) hash(ctx context.Context, t *testing.T, rev int64) hashAnswer {
	t.Helper()
	resp, err := c.mt.HashKV(ctx, &pb.HashKVRequest{Revision: rev})
	if err != nil {
		t.Fatalf("HashKV at %d: %v", rev, err)
	}
	return hashAnswer{hash: resp.Hash, compactRev: resp.CompactRevision, hashRev: resp.HashRevision, header: resp.Header.Revision}
}
