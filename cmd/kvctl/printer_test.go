package main

import (
	"bytes"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

var (
	hdr = &pb.ResponseHeader{ClusterId: 0xabc, MemberId: 0x123, Revision: 7, RaftTerm: 2}
	kv1 = &mvccpb.KeyValue{Key: []byte("k1"), Value: []byte("v 1"), CreateRevision: 2, ModRevision: 5, Version: 3, Lease: 0x1f}
	kv2 = &mvccpb.KeyValue{Key: []byte("k\x002"), Value: []byte("\"q\"\n"), CreateRevision: 6, ModRevision: 6, Version: 1}
	get = &pb.RangeResponse{Header: hdr, Kvs: []*mvccpb.KeyValue{kv1, kv2}, Count: 3, More: true}
	txn = &pb.TxnResponse{Header: hdr, Succeeded: true, Responses: []*pb.ResponseOp{
		{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: hdr, PrevKv: kv1}}},
		{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Header: hdr, Kvs: []*mvccpb.KeyValue{kv1}, Count: 1}}},
		{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: &pb.DeleteRangeResponse{Header: hdr, Deleted: 2}}},
	}}
	members = &pb.MemberListResponse{Header: &pb.ResponseHeader{ClusterId: 0xabc, MemberId: 0x123, RaftTerm: 2}, Members: []*pb.Member{
		{ID: 0x123, Name: "m1", PeerURLs: []string{"http://p1"}, ClientURLs: []string{"http://c1", "http://c2"}},
		{ID: 0x456, PeerURLs: []string{"http://p2"}, IsLearner: true},
	}}
	statuses = []epStatus{{Ep: "ep1", Resp: &pb.StatusResponse{Header: hdr, Version: "3.7.3", StorageVersion: "3.7.0",
		DbSize: 20480, DbSizeInUse: 16384, DbSizeQuota: 2147483648, Leader: 0x123, RaftTerm: 2, RaftIndex: 9, RaftAppliedIndex: 9,
		DowngradeInfo: &pb.DowngradeInfo{}}}}
	health = []epHealth{{Ep: "ep1", Health: true, Took: "1.5ms"}, {Ep: "ep2", Took: "1s", Error: "context deadline exceeded"}}
	hashes = []epHashKV{{Ep: "ep1", Resp: &pb.HashKVResponse{Header: hdr, Hash: 2871828021, CompactRevision: -1, HashRevision: 4}}}
)

// printAll runs every printer method with format and returns what each
// printed, or its exit code when it refused.
func printAll(t *testing.T, format string, hex bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, call := range map[string]func(printer) error{
		"get": func(p printer) error { return p.Get(get) },
		"put": func(p printer) error { return p.Put(&pb.PutResponse{Header: hdr, PrevKv: kv1}) },
		"del": func(p printer) error {
			return p.Del(&pb.DeleteRangeResponse{Header: hdr, Deleted: 1, PrevKvs: []*mvccpb.KeyValue{kv2}})
		},
		"txn":    func(p printer) error { return p.Txn(txn) },
		"member": func(p printer) error { return p.MemberList(members) },
		"status": func(p printer) error { return p.EndpointStatus(statuses) },
		"health": func(p printer) error { return p.EndpointHealth(health) },
		"hashkv": func(p printer) error { return p.EndpointHashKV(hashes) },
	} {
		var stdout, stderr bytes.Buffer
		p, err := newPrinter(format, hex, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		if err := call(p); err != nil {
			out[name] = "refused: " + err.Error()
			if exitCode(err) != exitBadFeature {
				t.Errorf("%s %s: exit code %d", format, name, exitCode(err))
			}
			continue
		}
		out[name] = stdout.String()
		if stderr.Len() > 0 {
			out[name] += "stderr: " + stderr.String()
		}
	}
	return out
}

func TestSimplePrinter(t *testing.T) {
	got := printAll(t, "simple", false)
	want := map[string]string{
		"get":    "k1\nv 1\nk\x002\n\"q\"\n\n",
		"put":    "OK\nk1\nv 1\n",
		"del":    "1\nk\x002\n\"q\"\n\n",
		"txn":    "SUCCESS\n\nOK\nk1\nv 1\n\nk1\nv 1\n\n2\n",
		"member": "123, started, m1, http://p1, http://c1,http://c2, false\n456, unstarted, , http://p2, , true\n",
		"status": "ep1, 123, 3.7.3, 3.7.0, 20 kB, 16 kB, 20%, 2.1 GB, true, false, 2, 9, 9, , , false\n",
		"health": "ep1 is healthy: successfully committed proposal: took = 1.5ms\n" +
			"stderr: ep2 is unhealthy: failed to commit proposal: context deadline exceeded\n",
		"hashkv": "ep1, 2871828021, 4\n",
	}
	compare(t, "simple", got, want)
	if h := printAll(t, "simple", true); h["get"] != `\x6b\x31`+"\n"+`\x76\x20\x31`+"\n"+`\x6b\x00\x32`+"\n"+`\x22\x71\x22\x0a`+"\n" {
		t.Errorf("simple --hex get: %q", h["get"])
	}
	var b bytes.Buffer
	p := &simplePrinter{out: &b, valueOnly: true}
	_ = p.Get(get)
	if b.String() != "v 1\n\"q\"\n\n" {
		t.Errorf("values only: %q", b.String())
	}
}

func TestFieldsPrinter(t *testing.T) {
	got := printAll(t, "fields", false)
	header := "\"ClusterID\" : 2748\n\"MemberID\" : 291\n\"Revision\" : 7\n\"RaftTerm\" : 2\n"
	kv1Fields := "\"Key\" : \"k1\"\n\"CreateRevision\" : 2\n\"ModRevision\" : 5\n\"Version\" : 3\n\"Value\" : \"v 1\"\n\"Lease\" : 31\n"
	want := map[string]string{
		"get": header + kv1Fields +
			"\"Key\" : \"k\\x002\"\n\"CreateRevision\" : 6\n\"ModRevision\" : 6\n\"Version\" : 1\n\"Value\" : \"\\\"q\\\"\\n\"\n\"Lease\" : 0\n" +
			"\"More\" : true\n\"Count\" : 3\n",
		"member": "\"ClusterID\" : 2748\n\"MemberID\" : 291\n\"RaftTerm\" : 2\n" +
			"\"ID\" : 291\n\"Name\" : \"m1\"\n\"PeerURL\" : \"http://p1\"\n\"ClientURL\" : \"http://c1\"\n\"ClientURL\" : \"http://c2\"\n\"IsLearner\" : false\n\n" +
			"\"ID\" : 1110\n\"Name\" : \"\"\n\"PeerURL\" : \"http://p2\"\n\"IsLearner\" : true\n\n",
		"health": "\"Endpoint\" : \"ep1\"\n\"Health\" : true\n\"Took\" : 1.5ms\n\"Error\" : \n\n" +
			"\"Endpoint\" : \"ep2\"\n\"Health\" : false\n\"Took\" : 1s\n\"Error\" : context deadline exceeded\n\n",
		"hashkv": header + "\"Endpoint\" : \"ep1\"\n\"Hash\" : 2871828021\n\"HashRevision\" : 4\n\n",
		"status": header + "\"Version\" : \"3.7.3\"\n\"StorageVersion\" : \"3.7.0\"\n\"DBSize\" : 20480\n\"DBSizeInUse\" : 16384\n" +
			"\"DBSizeQuota\" : 2147483648\n\"Leader\" : 291\n\"IsLearner\" : false\n\"RaftIndex\" : 9\n\"RaftAppliedIndex\" : 9\n" +
			"\"Errors\" : []\n\"Endpoint\" : \"ep1\"\n\"DowngradeTargetVersion\" : \"\"\n\"DowngradeEnabled\" : false\n\n",
	}
	// A put prefixes the names of the pair it replaced with Prev.
	want["put"] = header + "\"PrevKey\" : \"k1\"\n\"PrevCreateRevision\" : 2\n\"PrevModRevision\" : 5\n\"PrevVersion\" : 3\n" +
		"\"PrevValue\" : \"v 1\"\n\"PrevLease\" : 31\n"
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("fields %s:\n got %q\nwant %q", k, got[k], want[k])
		}
	}
	if !strings.HasPrefix(got["txn"], header+"\"Succeeded\" : true\n"+header+"\"PrevKey\"") {
		t.Errorf("fields txn: %q", got["txn"])
	}
	h := printAll(t, "fields", true)
	if !strings.HasPrefix(h["get"], "\"ClusterID\" : abc\n\"MemberID\" : 123\n") || !strings.Contains(h["get"], "\"Lease\" : 000000000000001f\n") {
		t.Errorf("fields --hex get: %q", h["get"])
	}
}

func TestJSONPrinter(t *testing.T) {
	got := printAll(t, "json", false)
	want := map[string]string{
		"get": `{"header":{"cluster_id":2748,"member_id":291,"revision":7,"raft_term":2},"kvs":[` +
			`{"key":"azE=","create_revision":2,"mod_revision":5,"version":3,"value":"diAx","lease":31},` +
			`{"key":"awAy","create_revision":6,"mod_revision":6,"version":1,"value":"InEiCg=="}],"more":true,"count":3}` + "\n",
		"txn": `{"header":{"cluster_id":2748,"member_id":291,"revision":7,"raft_term":2},"succeeded":true,"responses":[` +
			`{"Response":{"response_put":{"header":{"cluster_id":2748,"member_id":291,"revision":7,"raft_term":2},` +
			`"prev_kv":{"key":"azE=","create_revision":2,"mod_revision":5,"version":3,"value":"diAx","lease":31}}}},` +
			`{"Response":{"response_range":{"header":{"cluster_id":2748,"member_id":291,"revision":7,"raft_term":2},` +
			`"kvs":[{"key":"azE=","create_revision":2,"mod_revision":5,"version":3,"value":"diAx","lease":31}],"count":1}}},` +
			`{"Response":{"response_delete_range":{"header":{"cluster_id":2748,"member_id":291,"revision":7,"raft_term":2},"deleted":2}}}]}` + "\n",
		"health": `[{"endpoint":"ep1","health":true,"took":"1.5ms"},{"endpoint":"ep2","health":false,"took":"1s","error":"context deadline exceeded"}]` + "\n",
		"hashkv": `[{"Endpoint":"ep1","HashKV":{"header":{"cluster_id":2748,"member_id":291,"revision":7,"raft_term":2},` +
			`"hash":2871828021,"compact_revision":-1,"hash_revision":4}}]` + "\n",
		"member": `{"header":{"cluster_id":2748,"member_id":291,"raft_term":2},"members":[` +
			`{"ID":291,"name":"m1","peerURLs":["http://p1"],"clientURLs":["http://c1","http://c2"]},` +
			`{"ID":1110,"peerURLs":["http://p2"],"isLearner":true}]}` + "\n",
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("json %s:\n got %s\nwant %s", k, got[k], want[k])
		}
	}
	h := printAll(t, "json", true)
	wantHex := `{"header":{"cluster_id":"abc","member_id":"123","raft_term":2},"members":[` +
		`{"ID":"123","name":"m1","peerURLs":["http://p1"],"clientURLs":["http://c1","http://c2"]},` +
		`{"ID":"456","peerURLs":["http://p2"],"isLearner":true}]}` + "\n"
	if h["member"] != wantHex {
		t.Errorf("json --hex member list:\n got %s\nwant %s", h["member"], wantHex)
	}
	if h["get"] != got["get"] {
		t.Errorf("--hex changed json for get: %s", h["get"])
	}
}

func TestTableAndProtobufPrinters(t *testing.T) {
	got := printAll(t, "table", false)
	for _, k := range []string{"get", "put", "del", "txn"} {
		if got[k] != "refused: table not supported as output format" {
			t.Errorf("table %s: %q", k, got[k])
		}
	}
	wantHashKV := "┌──────────┬────────────┬───────────────┐\n" +
		"│ ENDPOINT │    HASH    │ HASH REVISION │\n" +
		"├──────────┼────────────┼───────────────┤\n" +
		"│      ep1 │ 2871828021 │             4 │\n" +
		"└──────────┴────────────┴───────────────┘\n"
	if got["hashkv"] != wantHashKV {
		t.Errorf("table hashkv:\n%s\nwant\n%s", got["hashkv"], wantHashKV)
	}
	if !strings.Contains(got["member"], "│ 456 │ unstarted │      │  http://p2 │                     │       true │") {
		t.Errorf("table member list:\n%s", got["member"])
	}

	pbOut := printAll(t, "protobuf", false)
	for _, k := range []string{"status", "health", "hashkv"} {
		if pbOut[k] != "refused: protobuf not supported as output format" {
			t.Errorf("protobuf %s: %q", k, pbOut[k])
		}
	}
	var back pb.RangeResponse
	if err := proto.Unmarshal([]byte(pbOut["get"]), &back); err != nil || !proto.Equal(&back, get) {
		t.Errorf("protobuf get does not decode to the response: %v %v", err, &back)
	}
	if _, err := newPrinter("yaml", false, nil, nil); exitCode(err) != exitBadFeature || err.Error() != "unsupported output format" {
		t.Errorf("unknown format: %v", err)
	}
}

func compare(t *testing.T, format string, got, want map[string]string) {
	t.Helper()
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("%s %s:\n got %q\nwant %q", format, k, got[k], want[k])
		}
	}
}
