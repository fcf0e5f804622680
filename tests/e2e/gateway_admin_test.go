package e2e

import (
	"fmt"
	"testing"
)

// memberFields are the member-list fields two separate clusters answer
// differently: IDs, names and each member's own ports.
var memberFields = append([]string{"ID", "name", "peerURLs", "clientURLs", "leader"}, headerIDs...)

// TestGatewayClusterAndMaintenance covers /v3/cluster/member/* and
// /v3/maintenance/* on kvd and etcd, errors included. Each server is
// told its own member IDs.
func TestGatewayClusterAndMaintenance(t *testing.T) {
	p := startGatewayPair(t)
	p.same("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("k"), b64("v")), headerIDs)

	list := p.same("/v3/cluster/member/list", `{}`, memberFields)
	kvdID := field(list.JSON, "header", "member_id")
	etcdID := field(gwPost(t, p.etcd, "/v3/cluster/member/list", `{}`).JSON, "header", "member_id")
	p.same("/v3/cluster/member/list", `{"linearizable":true}`, memberFields)

	// A learner can join a one-member cluster without costing it its
	// quorum; it never starts, so it cannot be promoted.
	const learner = `{"peerURLs":["http://127.0.0.1:1"],"isLearner":true}`
	kAdd := gwPost(t, p.kvd, "/v3/cluster/member/add", learner)
	eAdd := gwPost(t, p.etcd, "/v3/cluster/member/add", learner)
	compareAnswers(t, "member add", kAdd, eAdd, memberFields)
	kNew, eNew := field(kAdd.JSON, "member", "ID"), field(eAdd.JSON, "member", "ID")
	if kNew == nil {
		t.Fatalf("member add answered no member: %s", kAdd.Raw)
	}
	byID := func(path, body string, kid, eid any, mask []string) {
		t.Helper()
		compareAnswers(t, path+" "+body,
			gwPost(t, p.kvd, path, fmt.Sprintf(body, kid)),
			gwPost(t, p.etcd, path, fmt.Sprintf(body, eid)), mask)
	}
	byID("/v3/cluster/member/update", `{"ID":%v,"peerURLs":["http://127.0.0.1:2"]}`, kNew, eNew, memberFields)
	byID("/v3/cluster/member/promote", `{"ID":%v}`, kNew, eNew, memberFields)
	byID("/v3/cluster/member/remove", `{"ID":%v}`, kNew, eNew, memberFields)
	p.same("/v3/cluster/member/remove", `{"ID":12345}`, memberFields)
	p.same("/v3/cluster/member/update", `{"ID":12345,"peerURLs":["http://127.0.0.1:3"]}`, memberFields)
	p.same("/v3/cluster/member/promote", `{"ID":12345}`, memberFields)
	p.same("/v3/cluster/member/add", `{"peerURLs":["not a url"]}`, memberFields)
	compareAnswers(t, "member add of the member's own peer URL",
		gwPost(t, p.kvd, "/v3/cluster/member/add", fmt.Sprintf(`{"peerURLs":[%q]}`, p.kvd.PeerURL)),
		gwPost(t, p.etcd, "/v3/cluster/member/add", fmt.Sprintf(`{"peerURLs":[%q]}`, p.etcd.PeerURL)), memberFields)

	// Sizes, indexes and versions are each implementation's own.
	p.same("/v3/maintenance/status", `{}`, append([]string{"version", "dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex", "leader"}, headerIDs...))
	p.same("/v3/maintenance/hash", `{}`, append([]string{"hash"}, headerIDs...))
	p.same("/v3/maintenance/hashkv", `{"revision":0}`, headerIDs)
	p.same("/v3/maintenance/hashkv", `{"revision":1000}`, headerIDs)
	p.same("/v3/maintenance/defragment", `{}`, headerIDs)
	p.same("/v3/maintenance/alarm", `{"action":"GET"}`, headerIDs)
	alarms := append([]string{"memberID"}, headerIDs...)
	byID("/v3/maintenance/alarm", `{"action":"ACTIVATE","memberID":%v,"alarm":"NOSPACE"}`, kvdID, etcdID, alarms)
	p.same("/v3/maintenance/alarm", `{"action":"GET"}`, alarms)
	p.same("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("k"), b64("full")), headerIDs)
	byID("/v3/maintenance/alarm", `{"action":"DEACTIVATE","memberID":%v,"alarm":"NOSPACE"}`, kvdID, etcdID, alarms)
	p.same("/v3/maintenance/alarm", `{"action":"GET"}`, headerIDs)
	p.same("/v3/maintenance/transfer-leadership", `{"targetID":12345}`, headerIDs)
	byID("/v3/maintenance/transfer-leadership", `{"targetID":%v}`, kvdID, etcdID, headerIDs)

	// The snapshot streams the database: compare the first chunk's shape.
	ks, es := p.streams("/v3/maintenance/snapshot", `{}`)
	first := sameNext(t, "snapshot", ks, es, append([]string{"blob", "remaining_bytes", "version"}, headerIDs...))
	if field(first.JSON, "result", "blob") == nil {
		t.Fatalf("snapshot's first answer carries no data: %.200s", first.Raw)
	}
}

// TestGatewayAuth sets auth up through /v3/auth/*, turns it on, and
// requires kvd to refuse and accept requests as etcd does: without a
// token, with a bad one, with each server's own token in the
// Authorization header (bare or as a bearer token), and for a user
// whose role allows part of the keyspace only.
func TestGatewayAuth(t *testing.T) {
	p := startGatewayPair(t)
	token := append([]string{"token"}, headerIDs...)
	setup := []struct{ path, body string }{
		{"/v3/auth/user/add", `{"name":"root","password":"rootpw"}`},
		{"/v3/auth/user/add", `{"name":"alice","password":"alicepw"}`},
		{"/v3/auth/user/add", `{"name":"alice","password":"again"}`}, // exists
		{"/v3/auth/role/add", `{"name":"reader"}`},
		{"/v3/auth/role/grant", fmt.Sprintf(`{"name":"reader","perm":{"permType":"READ","key":%q,"range_end":%q}}`, b64("pub/"), b64("pub0"))},
		{"/v3/auth/user/grant", `{"user":"root","role":"root"}`},
		{"/v3/auth/user/grant", `{"user":"alice","role":"reader"}`},
		{"/v3/auth/user/grant", `{"user":"nobody","role":"reader"}`}, // no such user
		{"/v3/auth/user/list", `{}`},
		{"/v3/auth/role/list", `{}`},
		{"/v3/auth/user/get", `{"name":"alice"}`},
		{"/v3/auth/role/get", `{"role":"reader"}`},
		{"/v3/auth/status", `{}`},
		{"/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("pub/a"), b64("1"))},
		{"/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("secret"), b64("2"))},
		{"/v3/auth/enable", `{}`},
	}
	for _, s := range setup {
		p.same(s.path, s.body, headerIDs)
	}

	// Refused without a token, with an unknown one, and for a wrong
	// password.
	pub := fmt.Sprintf(`{"key":%q}`, b64("pub/a"))
	p.same("/v3/kv/range", pub, headerIDs)
	p.same("/v3/kv/range", pub, headerIDs, "Authorization", "nosuchtoken")
	p.same("/v3/auth/authenticate", `{"name":"root","password":"wrong"}`, headerIDs)
	p.same("/v3/auth/authenticate", `{"name":"nobody","password":"x"}`, headerIDs)

	login := func(name, password string) (kvdTok, etcdTok string) {
		t.Helper()
		body := fmt.Sprintf(`{"name":%q,"password":%q}`, name, password)
		k := gwPost(t, p.kvd, "/v3/auth/authenticate", body)
		e := gwPost(t, p.etcd, "/v3/auth/authenticate", body)
		compareAnswers(t, "authenticate "+name, k, e, token)
		kt, _ := field(k.JSON, "token").(string)
		et, _ := field(e.JSON, "token").(string)
		if kt == "" || et == "" {
			t.Fatalf("authenticate %s: no token from kvd (%s) or etcd (%s)", name, k.Raw, e.Raw)
		}
		return kt, et
	}
	kRoot, eRoot := login("root", "rootpw")
	asRoot := func(path, body string) gwAnswer {
		t.Helper()
		return p.sameWith(path, body, headerIDs, []string{"Authorization", kRoot}, []string{"Authorization", eRoot})
	}
	got := asRoot("/v3/kv/range", pub)
	if field(got.JSON, "count") != "1" {
		t.Fatalf("range with root's token: %s", got.Raw)
	}
	p.sameWith("/v3/kv/range", pub, headerIDs, []string{"Authorization", "Bearer " + kRoot}, []string{"Authorization", "Bearer " + eRoot})
	asRoot("/v3/auth/status", `{}`)
	asRoot("/v3/auth/user/list", `{}`)

	kAlice, eAlice := login("alice", "alicepw")
	asAlice := func(path, body string) {
		t.Helper()
		p.sameWith(path, body, headerIDs, []string{"Authorization", kAlice}, []string{"Authorization", eAlice})
	}
	asAlice("/v3/kv/range", pub)
	asAlice("/v3/kv/range", fmt.Sprintf(`{"key":%q}`, b64("secret")))                   // not hers
	asAlice("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("pub/b"), b64("3"))) // read only
	asAlice("/v3/auth/user/list", `{}`)                                                 // not root
	// Streams refused for who asks: a watch of a key she may not read is
	// created and cancelled; a snapshot, for root only, ends with the
	// gateway's stream error line.
	kw := openStream(t, p.kvd, "/v3/watch", fmt.Sprintf(`{"create_request":{"key":%q}}`, b64("secret")), "Authorization", kAlice)
	ew := openStream(t, p.etcd, "/v3/watch", fmt.Sprintf(`{"create_request":{"key":%q}}`, b64("secret")), "Authorization", eAlice)
	sameNext(t, "watch refused", kw, ew, headerIDs)
	ks := openStream(t, p.kvd, "/v3/maintenance/snapshot", `{}`, "Authorization", kAlice)
	es := openStream(t, p.etcd, "/v3/maintenance/snapshot", `{}`, "Authorization", eAlice)
	refused := sameNext(t, "snapshot refused", ks, es, headerIDs)
	if field(refused.JSON, "error", "code") == nil {
		t.Fatalf("snapshot by a user who is not root: %s", refused.Raw)
	}
	asAlice("/v3/auth/user/changepw", `{"name":"alice","password":"newpw"}`) // not root

	for _, s := range []struct{ path, body string }{
		{"/v3/auth/user/changepw", `{"name":"alice","password":"newpw"}`},
		{"/v3/auth/role/revoke", fmt.Sprintf(`{"role":"reader","key":%q,"range_end":%q}`, b64("pub/"), b64("pub0"))},
		{"/v3/auth/user/revoke", `{"name":"alice","role":"reader"}`},
		{"/v3/auth/user/delete", `{"name":"alice"}`},
		{"/v3/auth/user/delete", `{"name":"alice"}`}, // gone
		{"/v3/auth/role/delete", `{"role":"reader"}`},
		{"/v3/auth/disable", `{}`},
	} {
		asRoot(s.path, s.body)
	}
	p.same("/v3/kv/range", pub, headerIDs)
	p.same("/v3/auth/status", `{}`, headerIDs)
}
