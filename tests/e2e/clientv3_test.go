package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// servers are the targets every behaviour runs against: kvd, and the real
// etcd v3.7.3 as the reference the expectations were checked on.
var servers = []struct {
	name  string
	start func(testing.TB, ...string) *framework.Member
}{
	{"kvd", framework.StartKvd},
	{"etcd", framework.StartEtcdMember},
}

// TestClientv3Conformance drives each server with etcd's own Go client and
// checks exact results: revisions, versions, counts and error messages.
func TestClientv3Conformance(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			m := srv.start(t, "--max-txn-ops", "4", "--max-request-bytes", "4096")
			c := newClientv3(t, m.Endpoint)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			checkKV(ctx, t, c)
		})
	}
}

// TestGRPCServers runs the KV and watch behaviours on both of kvd's gRPC
// servers, its own (the default) and grpc-go's (--grpc-server grpc-go):
// the exact results checkKV asserts, and the same watch transcript.
func TestGRPCServers(t *testing.T) {
	watched := map[string]string{}
	for _, server := range []string{"kvd", "grpc-go"} {
		t.Run(server, func(t *testing.T) {
			m := framework.StartKvd(t, "--grpc-server", server, "--max-txn-ops", "4", "--max-request-bytes", "4096")
			c := newClientv3(t, m.Endpoint)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			checkKV(ctx, t, c)
			w := newClientv3(t, framework.StartKvd(t, "--grpc-server", server).Endpoint)
			watched[server] = watchScenario(ctx, t, w)
		})
	}
	if watched["kvd"] != watched["grpc-go"] {
		t.Fatalf("the servers' watch transcripts differ:\nkvd:\n%s\ngrpc-go:\n%s", watched["kvd"], watched["grpc-go"])
	}
}

func checkKV(ctx context.Context, t *testing.T, c *clientv3.Client) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Revisions start at 1 on a fresh server; each write bumps them by one.
	for i, k := range []string{"/a", "/b", "/c", "/d"} {
		resp, err := c.Put(ctx, k, strings.Repeat("v", i+1))
		must(err)
		if want := int64(i + 2); resp.Header.Revision != want {
			t.Fatalf("put %s: rev %d, want %d", k, resp.Header.Revision, want)
		}
	}
	put, err := c.Put(ctx, "/a", "again", clientv3.WithPrevKV())
	must(err)
	if put.PrevKv == nil || string(put.PrevKv.Value) != "v" || put.Header.Revision != 6 {
		t.Fatalf("put with prev kv: %+v", put)
	}

	get, err := c.Get(ctx, "/a")
	must(err)
	kv := get.Kvs[0]
	if kv.CreateRevision != 2 || kv.ModRevision != 6 || kv.Version != 2 || string(kv.Value) != "again" {
		t.Fatalf("get /a: %+v", kv)
	}

	get, err = c.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithLimit(2))
	must(err)
	if len(get.Kvs) != 2 || !get.More || get.Count != 4 {
		t.Fatalf("prefix with limit: %d kvs, more=%v, count=%d", len(get.Kvs), get.More, get.Count)
	}

	get, err = c.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithKeysOnly())
	must(err)
	if keys := joinKeys(get); keys != "/a,/d,/c,/b" || len(get.Kvs[0].Value) != 0 {
		t.Fatalf("sort by mod desc, keys only: %s", keys)
	}

	get, err = c.Get(ctx, "/b", clientv3.WithFromKey(), clientv3.WithCountOnly())
	must(err)
	if get.Count != 3 || len(get.Kvs) != 0 {
		t.Fatalf("from key count only: count %d, %d kvs", get.Count, len(get.Kvs))
	}

	get, err = c.Get(ctx, "/a", clientv3.WithRev(2))
	must(err)
	if string(get.Kvs[0].Value) != "v" {
		t.Fatalf("get at rev 2: %q", get.Kvs[0].Value)
	}

	get, err = c.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithMinModRev(4), clientv3.WithMaxModRev(5))
	must(err)
	if keys := joinKeys(get); keys != "/c,/d" {
		t.Fatalf("mod revision filter: %s", keys)
	}

	del, err := c.Delete(ctx, "/c", clientv3.WithPrevKV())
	must(err)
	if del.Deleted != 1 || len(del.PrevKvs) != 1 || del.Header.Revision != 7 {
		t.Fatalf("delete: %+v", del)
	}

	txn, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.Version("/a"), "=", 2), clientv3.Compare(clientv3.Value("/b"), ">", "a")).
		Then(clientv3.OpPut("/t1", "x"), clientv3.OpPut("/t2", "y"), clientv3.OpGet("/t1")).
		Else(clientv3.OpGet("/a")).Commit()
	must(err)
	if !txn.Succeeded || txn.Header.Revision != 8 || len(txn.Responses) != 3 {
		t.Fatalf("txn: %+v", txn)
	}
	if got := txn.Responses[2].GetResponseRange().Kvs[0]; got.ModRevision != 8 {
		t.Fatalf("get inside txn sees mod rev %d, want 8", got.ModRevision)
	}

	txn, err = c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision("/missing"), "!=", 0)).
		Then(clientv3.OpPut("/never", "x")).Else(clientv3.OpGet("/t2")).Commit()
	must(err)
	if txn.Succeeded || txn.Header.Revision != 8 {
		t.Fatalf("failed read-only branch must keep the revision: %+v", txn)
	}

	comp, err := c.Compact(ctx, 6, clientv3.WithCompactPhysical())
	must(err)
	if comp.Header.Revision != 8 {
		t.Fatalf("compact header rev %d", comp.Header.Revision)
	}

	errorCases := []struct {
		name string
		do   func() error
		want error
	}{
		{"read compacted", func() error { _, err := c.Get(ctx, "/a", clientv3.WithRev(3)); return err }, rpctypes.ErrCompacted},
		{"read future", func() error { _, err := c.Get(ctx, "/a", clientv3.WithRev(100)); return err }, rpctypes.ErrFutureRev},
		{"compact again", func() error { _, err := c.Compact(ctx, 5); return err }, rpctypes.ErrCompacted},
		{"compact future", func() error { _, err := c.Compact(ctx, 100); return err }, rpctypes.ErrFutureRev},
		{"empty key", func() error { _, err := c.Put(ctx, "", "x"); return err }, rpctypes.ErrEmptyKey},
		{"too large", func() error { _, err := c.Put(ctx, "/big", strings.Repeat("x", 5000)); return err }, rpctypes.ErrRequestTooLarge},
		{"too many ops", func() error {
			ops := []clientv3.Op{clientv3.OpPut("/1", ""), clientv3.OpPut("/2", ""), clientv3.OpPut("/3", ""), clientv3.OpPut("/4", ""), clientv3.OpPut("/5", "")}
			_, err := c.Txn(ctx).Then(ops...).Commit()
			return err
		}, rpctypes.ErrTooManyOps},
		{"duplicate key", func() error {
			_, err := c.Txn(ctx).Then(clientv3.OpPut("/d1", "a"), clientv3.OpPut("/d1", "b")).Commit()
			return err
		}, rpctypes.ErrDuplicateKey},
		{"ignore value of missing key", func() error { _, err := c.Put(ctx, "/nokey", "", clientv3.WithIgnoreValue()); return err }, rpctypes.ErrKeyNotFound},
	}
	for _, ec := range errorCases {
		if err := ec.do(); !errors.Is(rpctypes.Error(err), ec.want) {
			t.Errorf("%s: err = %v, want %v", ec.name, err, ec.want)
		}
	}
	// None of the refused requests changed anything.
	get, err = c.Get(ctx, "/", clientv3.WithPrefix())
	must(err)
	if get.Header.Revision != 8 || joinKeys(get) != "/a,/b,/d,/t1,/t2" {
		t.Fatalf("after refused requests: rev %d keys %s", get.Header.Revision, joinKeys(get))
	}
}

func joinKeys(r *clientv3.GetResponse) string {
	keys := make([]string, len(r.Kvs))
	for i, kv := range r.Kvs {
		keys[i] = string(kv.Key)
	}
	return strings.Join(keys, ",")
}
