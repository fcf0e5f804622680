package e2e

import (
	"fmt"
	"testing"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestGatewayOnFollowers sends gateway requests to the followers of a
// 3-member kvd cluster and of a 3-member etcd cluster: a put through one
// follower is seen by a watch opened through the other and by a
// linearizable range there, and leadership moves through a follower's
// /v3/maintenance/transfer-leadership as etcd's refuses it (only the
// leader may).
func TestGatewayOnFollowers(t *testing.T) {
	etcd := framework.StartCluster(t, framework.RequireBin(t, framework.EtcdBin()), 3)
	kvd := framework.StartKvdCluster(t, 3)
	kf := followers(t, kvd)
	ef := followers(t, etcd)
	writer := &gwPair{t: t, kvd: kf[0], etcd: ef[0]}
	reader := &gwPair{t: t, kvd: kf[1], etcd: ef[1]}
	key := b64("through-a-follower")

	kw, ew := reader.streams("/v3/watch", fmt.Sprintf(`{"create_request":{"key":%q}}`, key))
	// Three-member clusters answer with revisions and terms of their own
	// elections; the events' revisions agree.
	mask := append([]string{"revision"}, headerIDs...)
	sameNext(t, "watch on a follower", kw, ew, mask)
	writer.same("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, key, b64("v")), mask)
	ev := sameNext(t, "event of a put through the other follower", kw, ew, append([]string{"create_revision", "mod_revision"}, mask...))
	if field(ev.JSON, "result", "events") == nil {
		t.Fatalf("no event: %s", ev.Raw)
	}
	got := reader.same("/v3/kv/range", fmt.Sprintf(`{"key":%q}`, key), append([]string{"create_revision", "mod_revision"}, mask...))
	if field(got.JSON, "count") != "1" {
		t.Fatalf("range on a follower after a put through another: %s", got.Raw)
	}
	reader.same("/v3/maintenance/transfer-leadership", fmt.Sprintf(`{"targetID":%v}`, 1), mask)
}

// followers returns the members of ms that are not the leader, as their
// gateways' status says.
func followers(t *testing.T, ms []*framework.Member) []*framework.Member {
	t.Helper()
	var out []*framework.Member
	for _, m := range ms {
		st := gwPost(t, m, "/v3/maintenance/status", `{}`)
		if field(st.JSON, "leader") == nil {
			t.Fatalf("status of %s names no leader: %s", m.Name, st.Raw)
		}
		if field(st.JSON, "leader") != field(st.JSON, "header", "member_id") {
			out = append(out, m)
		}
	}
	if len(out) != len(ms)-1 {
		t.Fatalf("%d followers among %d members", len(out), len(ms))
	}
	return out
}
