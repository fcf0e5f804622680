package e2e

import (
	"fmt"
	"testing"
)

// TestGatewayWatch opens /v3/watch streams on kvd and etcd as `curl -N`
// does (one create_request, the connection left open) and reads each
// answer as it comes: the creation, then the events of puts and deletes
// made meanwhile, a watch from an old revision, and one from a
// compacted revision, which is cancelled.
func TestGatewayWatch(t *testing.T) {
	p := startGatewayPair(t)
	foo := b64("foo")

	kw, ew := p.streams("/v3/watch", fmt.Sprintf(`{"create_request":{"key":%q}}`, foo))
	created := sameNext(t, "watch creation", kw, ew, headerIDs)
	if field(created.JSON, "result", "created") != true {
		t.Fatalf("first watch answer is not a creation: %s", created.Raw)
	}

	p.same("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, foo, b64("bar")), headerIDs)
	ev := sameNext(t, "put event", kw, ew, headerIDs)
	if kv := field(ev.JSON, "result", "events"); kv == nil {
		t.Fatalf("no event after a put: %s", ev.Raw)
	}
	p.same("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("other"), b64("x")), headerIDs)
	p.same("/v3/kv/deleterange", fmt.Sprintf(`{"key":%q}`, foo), headerIDs)
	del := sameNext(t, "delete event", kw, ew, headerIDs)
	if field(del.JSON, "result", "events") == nil {
		t.Fatalf("no event after a delete: %s", del.Raw)
	}

	// From revision 1, with previous values: history in one answer.
	kh, eh := p.streams("/v3/watch", fmt.Sprintf(`{"create_request":{"key":%q,"range_end":%q,"start_revision":1,"prev_kv":true}}`, b64("\x00"), b64("\x00")))
	sameNext(t, "watch from revision 1 (creation)", kh, eh, headerIDs)
	sameNext(t, "watch from revision 1 (history)", kh, eh, headerIDs)

	// Filters and a watch that only asks for progress.
	kf, ef := p.streams("/v3/watch", fmt.Sprintf(`{"create_request":{"key":%q,"filters":["NOPUT"],"progress_notify":true}}`, foo))
	sameNext(t, "filtered watch creation", kf, ef, headerIDs)
	p.same("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, foo, b64("again")), headerIDs)
	p.same("/v3/kv/deleterange", fmt.Sprintf(`{"key":%q}`, foo), headerIDs)
	sameNext(t, "filtered watch sees the delete only", kf, ef, headerIDs)

	// A watch from a compacted revision is created, then cancelled with
	// the compaction revision.
	p.same("/v3/kv/compaction", `{"revision":4}`, headerIDs)
	kc, ec := p.streams("/v3/watch", fmt.Sprintf(`{"create_request":{"key":%q,"start_revision":2}}`, foo))
	sameNext(t, "compacted watch creation", kc, ec, headerIDs)
	cancelled := sameNext(t, "compacted watch cancellation", kc, ec, headerIDs)
	if field(cancelled.JSON, "result", "canceled") != true {
		t.Fatalf("watch from a compacted revision not cancelled: %s", cancelled.Raw)
	}
}

// TestGatewayLease covers /v3/lease/* and etcd's older /v3/kv/lease/*
// names for them, keep-alive (a stream) included, and the errors of
// unknown and duplicate leases.
func TestGatewayLease(t *testing.T) {
	p := startGatewayPair(t)
	// Remaining TTLs may straddle a second differently on each server.
	ttl := append([]string{"TTL"}, headerIDs...)

	p.same("/v3/lease/grant", `{"TTL":600,"ID":1000}`, headerIDs)
	// A lease granted without an ID gets a random one from each server.
	kg := gwPost(t, p.kvd, "/v3/lease/grant", `{"TTL":30}`)
	eg := gwPost(t, p.etcd, "/v3/lease/grant", `{"TTL":30}`)
	compareAnswers(t, "grant without an ID", kg, eg, append([]string{"ID"}, headerIDs...))
	if field(kg.JSON, "ID") == nil {
		t.Fatalf("grant without an ID got none: %s", kg.Raw)
	}
	p.same("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q,"lease":1000}`, b64("leased"), b64("v")), headerIDs)
	p.same("/v3/lease/timetolive", `{"ID":1000,"keys":true}`, ttl)
	p.same("/v3/kv/lease/timetolive", `{"ID":1000}`, ttl)
	p.same("/v3/lease/timetolive", `{"ID":77}`, headerIDs) // unknown: TTL -1

	// Lease lists hold the random ID too; compare them without it, and
	// require 1000 among kvd's.
	l := p.same("/v3/lease/leases", `{}`, append([]string{"leases"}, headerIDs...))
	if !leaseListed(l.JSON, "1000") {
		t.Fatalf("lease 1000 not listed: %s", l.Raw)
	}
	p.same("/v3/kv/lease/leases", `{}`, append([]string{"leases"}, headerIDs...))

	kk, ek := p.streams("/v3/lease/keepalive", `{"ID":1000}`)
	ka := sameNext(t, "keepalive", kk, ek, headerIDs)
	if field(ka.JSON, "result", "TTL") != "600" {
		t.Fatalf("keepalive answer: %s", ka.Raw)
	}
	kk.close()
	ek.close()

	// Errors.
	p.same("/v3/lease/grant", `{"TTL":600,"ID":1000}`, headerIDs) // exists
	p.same("/v3/lease/grant", `{"TTL":"x"}`, headerIDs)           // bad JSON
	p.same("/v3/lease/revoke", `{"ID":77}`, headerIDs)            // unknown
	kn, en := p.streams("/v3/lease/keepalive", `{"ID":77}`)
	sameNext(t, "keepalive of an unknown lease", kn, en, headerIDs)
	// A keep-alive stream whose request is not JSON: the gateway closes
	// its side, the server ends the stream, and the answer is empty.
	kb := gwPost(t, p.kvd, "/v3/lease/keepalive", `{"ID":`)
	eb := gwPost(t, p.etcd, "/v3/lease/keepalive", `{"ID":`)
	if kb.Status != eb.Status || kb.Raw != eb.Raw {
		t.Errorf("keepalive with bad JSON: kvd %d %q, etcd %d %q", kb.Status, kb.Raw, eb.Status, eb.Raw)
	}

	p.same("/v3/lease/revoke", `{"ID":1000}`, headerIDs)
	p.same("/v3/kv/range", fmt.Sprintf(`{"key":%q}`, b64("leased")), headerIDs)
	compareAnswers(t, "revoke of the random lease",
		gwPost(t, p.kvd, "/v3/kv/lease/revoke", fmt.Sprintf(`{"ID":%v}`, field(kg.JSON, "ID"))),
		gwPost(t, p.etcd, "/v3/kv/lease/revoke", fmt.Sprintf(`{"ID":%v}`, field(eg.JSON, "ID"))), headerIDs)
	p.same("/v3/kv/lease/revoke", `{"ID":1000}`, headerIDs) // gone
}

func leaseListed(v any, id string) bool {
	ls, _ := field(v, "leases").([]any)
	for _, l := range ls {
		if field(l, "ID") == id {
			return true
		}
	}
	return false
}
