package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// headerIDs are the response-header fields that two separate clusters
// legitimately answer differently.
var headerIDs = []string{"cluster_id", "member_id", "raft_term"}

// TestGatewayKV sends the curl requests and the rest of the KV
// paths, good and bad, to kvd's HTTP/JSON gateway and to etcd's, and
// requires the same status codes and JSON. Both servers start empty and
// see the same writes, so revisions agree and are compared.
func TestGatewayKV(t *testing.T) {
	p := startGatewayPair(t)
	foo, bar := b64("foo"), b64("bar")

	// The curl lines.
	p.same("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, foo, bar), headerIDs)
	got := p.same("/v3/kv/range", fmt.Sprintf(`{"key":%q}`, foo), headerIDs)
	if v := field(got.JSON, "count"); v != "1" {
		t.Fatalf("range of foo after its put: count %v in %s", v, got.Raw)
	}

	cases := []struct{ path, body string }{
		{"/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q,"prev_kv":true}`, foo, b64("baz"))},
		{"/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("a/1"), b64("one"))},
		{"/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("a/2"), b64("two"))},
		{"/v3/kv/put", fmt.Sprintf(`{"key":%q,"ignore_value":true}`, b64("a/2"))},
		{"/v3/kv/range", fmt.Sprintf(`{"key":%q,"range_end":%q}`, b64("a/"), b64("a0"))},
		{"/v3/kv/range", fmt.Sprintf(`{"key":%q,"range_end":%q,"limit":1,"sort_order":"DESCEND","sort_target":"KEY"}`, b64("a/"), b64("a0"))},
		{"/v3/kv/range", fmt.Sprintf(`{"key":%q,"range_end":%q,"count_only":true}`, b64("a/"), b64("a0"))},
		{"/v3/kv/range", fmt.Sprintf(`{"key":%q,"range_end":%q,"keys_only":true}`, b64("\x00"), b64("\x00"))},
		{"/v3/kv/range", fmt.Sprintf(`{"key":%q,"revision":2}`, foo)},
		{"/v3/kv/range", fmt.Sprintf(`{"key":%q,"serializable":true}`, foo)},
		{"/v3beta/kv/range", fmt.Sprintf(`{"key":%q}`, foo)},
		{"/v3/kv/range", `{"key":"bm9uZQ=="}`},
		{"/v3/kv/txn", fmt.Sprintf(`{"compare":[{"key":%q,"target":"VALUE","result":"EQUAL","value":%q}],`+
			`"success":[{"request_put":{"key":%q,"value":%q}},{"request_range":{"key":%q}}],`+
			`"failure":[{"request_range":{"key":%q}}]}`, foo, b64("baz"), b64("t"), b64("yes"), b64("t"), foo)},
		{"/v3/kv/txn", fmt.Sprintf(`{"compare":[{"key":%q,"target":"VERSION","result":"GREATER","version":"10"}],`+
			`"success":[{"request_delete_range":{"key":%q}}],"failure":[{"request_range":{"key":%q}}]}`, foo, foo, b64("t"))},
		{"/v3/kv/deleterange", fmt.Sprintf(`{"key":%q,"range_end":%q,"prev_kv":true}`, b64("a/"), b64("a0"))},
		{"/v3/kv/deleterange", fmt.Sprintf(`{"key":%q}`, b64("absent"))},
		{"/v3/kv/compaction", `{"revision":4,"physical":true}`},
		// Errors: their HTTP statuses and {"code","message"} bodies.
		{"/v3/kv/range", fmt.Sprintf(`{"key":%q,"revision":2}`, foo)},                  // compacted
		{"/v3/kv/range", fmt.Sprintf(`{"key":%q,"revision":1000}`, foo)},               // future revision
		{"/v3/kv/compaction", `{"revision":3}`},                                        // compacted already
		{"/v3/kv/compaction", `{"revision":1000}`},                                     // future revision
		{"/v3/kv/put", fmt.Sprintf(`{"key":"","value":%q}`, bar)},                      // empty key
		{"/v3/kv/range", `{}`},                                                         // empty key
		{"/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q,"lease":"12345"}`, foo, bar)}, // unknown lease
		{"/v3/kv/put", fmt.Sprintf(`{"key":%q,"ignore_value":true}`, b64("absent"))},   // nothing to keep
		{"/v3/kv/put", `{"key":`},                                                      // bad JSON
		{"/v3/kv/put", `{"key":12}`},                                                   // key of the wrong type
		{"/v3/kv/put", `{"key":"%%%"}`},                                                // key that is not base64
		{"/v3/kv/range", `not json`},                                                   // not JSON at all
		{"/v3/kv/nosuch", `{}`},                                                        // unknown path
		{"/v3/kv/txn", fmt.Sprintf(`{"success":[{"request_put":{"key":%q}},{"request_put":{"key":%q}}]}`, foo, foo)}, // duplicate key
	}
	for _, c := range cases {
		p.same(c.path, c.body, headerIDs)
	}
	// A request over --max-request-bytes (1.5 MiB by default).
	p.same("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("big"), b64(strings.Repeat("x", 2<<20))), headerIDs)
	// Unknown fields are ignored, as etcd's gateway does.
	p.same("/v3/kv/range", fmt.Sprintf(`{"key":%q,"no_such_field":1}`, foo), headerIDs)
}

// TestGatewayHTTPDetails compares what surrounds the JSON: the content
// type and CORS headers of an answer, a CORS preflight, a GET where the
// gateway takes POST, and the client URL with the gateway switched off.
func TestGatewayHTTPDetails(t *testing.T) {
	p := startGatewayPair(t)
	body := fmt.Sprintf(`{"key":%q}`, b64("foo"))
	k := gwPost(t, p.kvd, "/v3/kv/range", body)
	e := gwPost(t, p.etcd, "/v3/kv/range", body)
	compareHeaders(t, "range", k, e)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, method := range []string{http.MethodOptions, http.MethodGet} {
		kr := gwSendMethod(ctx, t, p.kvd, method, "/v3/kv/range", "")
		er := gwSendMethod(ctx, t, p.etcd, method, "/v3/kv/range", "")
		kb, _ := io.ReadAll(kr.Body)
		eb, _ := io.ReadAll(er.Body)
		kr.Body.Close()
		er.Body.Close()
		if kr.StatusCode != er.StatusCode || !sameJSONOrBytes(kb, eb) {
			t.Errorf("%s /v3/kv/range: kvd %d %q, etcd %d %q", method, kr.StatusCode, kb, er.StatusCode, eb)
		}
		compareHeaders(t, method, gwAnswer{Header: kr.Header}, gwAnswer{Header: er.Header})
	}

	off := startGatewayPair(t, "--enable-grpc-gateway=false")
	ko := gwPost(t, off.kvd, "/v3/kv/range", body)
	eo := gwPost(t, off.etcd, "/v3/kv/range", body)
	if ko.Status != eo.Status || ko.Raw != eo.Raw {
		t.Errorf("gateway off: kvd %d %q, etcd %d %q", ko.Status, ko.Raw, eo.Status, eo.Raw)
	}
}

// sameJSONOrBytes compares two bodies as JSON when both are, else byte
// for byte.
func sameJSONOrBytes(a, b []byte) bool {
	var ja, jb any
	if json.Unmarshal(a, &ja) == nil && json.Unmarshal(b, &jb) == nil {
		return reflect.DeepEqual(masked(ja, nil), masked(jb, nil))
	}
	return bytes.Equal(a, b)
}

// compareHeaders requires the headers a client of the gateway relies on
// to match.
func compareHeaders(t *testing.T, what string, got, want gwAnswer) {
	t.Helper()
	for _, h := range []string{"Content-Type", "Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Grpc-Metadata-Content-Type"} {
		if g, w := got.Header.Values(h), want.Header.Values(h); !slices.Equal(g, w) {
			t.Errorf("%s: header %s is %q on kvd, %q on etcd", what, h, g, w)
		}
	}
}
