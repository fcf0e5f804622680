package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestAgainstEtcd runs the client against a real etcd v3.7.3. The
// subtests share the server and run in order; each uses its own keys.
func TestAgainstEtcd(t *testing.T) {
	m := framework.StartEtcd(t)
	c := newTestClient(t, Config{Endpoints: []string{m.Endpoint}})
	for _, tt := range []struct {
		name string
		fn   func(*testing.T, *Client, string)
	}{
		{"GetOptions", testGetOptions},
		{"PutOptions", testPutOptions},
		{"Delete", testDelete},
		{"Txn", testTxn},
		{"Do", testDo},
		{"GetStream", testGetStream},
		{"Errors", testErrors},
		{"ClusterAndMaintenance", testClusterAndMaintenance},
		{"Compact", testCompact},
		{"FailOver", testFailOver},
		{"SetEndpoints", testSetEndpoints},
		{"ContextEndsClient", testContextEndsClient},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, c, m.Endpoint) })
	}
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// result carries a call's outcome to must, so a test reads
// try(c.Put(...)).must(t).
type result[R any] struct {
	r   R
	err error
}

func try[R any](r R, err error) result[R] { return result[R]{r, err} }

func (x result[R]) must(t *testing.T) R {
	t.Helper()
	if x.err != nil {
		t.Fatal(x.err)
	}
	return x.r
}

func keys(r *GetResponse) string {
	var ks []string
	for _, kv := range r.Kvs {
		ks = append(ks, string(kv.Key))
	}
	return strings.Join(ks, ",")
}

func testGetOptions(t *testing.T, c *Client, _ string) {
	ctx := testCtx(t)
	// /g/a=3, /g/b=1, /g/c=2 then /g/b rewritten: versions and revisions
	// differ between keys, so every sort target gives its own order.
	first := try(c.Put(ctx, "/g/a", "3")).must(t).Header.Revision
	try(c.Put(ctx, "/g/b", "1")).must(t)
	try(c.Put(ctx, "/g/c", "2")).must(t)
	last := try(c.Put(ctx, "/g/b", "1")).must(t).Header.Revision
	try(c.Put(ctx, "/h", "outside")).must(t)

	tests := []struct {
		name  string
		key   string
		opts  []OpOption
		want  string
		count int64
		more  bool
	}{
		{"single key", "/g/a", nil, "/g/a", 1, false},
		{"missing key", "/g/zz", nil, "", 0, false},
		{"prefix", "/g/", []OpOption{WithPrefix()}, "/g/a,/g/b,/g/c", 3, false},
		{"range", "/g/a", []OpOption{WithRange("/g/c")}, "/g/a,/g/b", 2, false},
		{"from key", "/g/b", []OpOption{WithFromKey()}, "/g/b,/g/c,/h", 3, false},
		{"limit", "/g/", []OpOption{WithPrefix(), WithLimit(2)}, "/g/a,/g/b", 3, true},
		{"old revision", "/g/", []OpOption{WithPrefix(), WithRev(first)}, "/g/a", 1, false},
		{"descend by key", "/g/", []OpOption{WithPrefix(), WithSort(SortByKey, SortDescend)}, "/g/c,/g/b,/g/a", 3, false},
		{"by value", "/g/", []OpOption{WithPrefix(), WithSort(SortByValue, SortAscend)}, "/g/b,/g/c,/g/a", 3, false},
		{"by version", "/g/", []OpOption{WithPrefix(), WithSort(SortByVersion, SortDescend), WithLimit(1)}, "/g/b", 3, true},
		{"by mod revision", "/g/", []OpOption{WithPrefix(), WithSort(SortByModRevision, SortDescend)}, "/g/b,/g/c,/g/a", 3, false},
		{"by create revision", "/g/", []OpOption{WithPrefix(), WithSort(SortByCreateRevision, SortDescend)}, "/g/c,/g/b,/g/a", 3, false},
		{"serializable", "/g/a", []OpOption{WithSerializable()}, "/g/a", 1, false},
		{"min mod rev", "/g/", []OpOption{WithPrefix(), WithMinModRev(last)}, "/g/b", 3, false},
		{"max mod rev", "/g/", []OpOption{WithPrefix(), WithMaxModRev(first + 1)}, "/g/a", 3, false},
		{"min create rev", "/g/", []OpOption{WithPrefix(), WithMinCreateRev(first + 2)}, "/g/c", 3, false},
		{"max create rev", "/g/", []OpOption{WithPrefix(), WithMaxCreateRev(first + 1)}, "/g/a,/g/b", 3, false},
		{"count only", "/g/", []OpOption{WithPrefix(), WithCountOnly()}, "", 3, false},
	}
	for _, tt := range tests {
		r, err := c.Get(ctx, tt.key, tt.opts...)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := keys(r); got != tt.want || r.Count != tt.count || r.More != tt.more {
			t.Errorf("%s: keys %q count %d more %v, want %q %d %v", tt.name, got, r.Count, r.More, tt.want, tt.count, tt.more)
		}
	}
	r := try(c.Get(ctx, "/g/", WithPrefix(), WithKeysOnly())).must(t)
	if len(r.Kvs) != 3 || r.Kvs[0].Value != nil {
		t.Errorf("keys only returned values: %v", r.Kvs)
	}
}

func testPutOptions(t *testing.T, c *Client, _ string) {
	ctx := testCtx(t)
	lease := try(pb.NewLeaseClient(c.conn).LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 60})).must(t)
	try(c.Put(ctx, "/p/k", "v1", WithLease(lease.ID))).must(t)
	r := try(c.Put(ctx, "/p/k", "v2", WithPrevKV(), WithIgnoreLease())).must(t)
	if r.PrevKv == nil || string(r.PrevKv.Value) != "v1" || r.PrevKv.Lease != lease.ID {
		t.Fatalf("prev kv: %v", r.PrevKv)
	}
	if kv := try(c.Get(ctx, "/p/k")).must(t).Kvs[0]; kv.Lease != lease.ID {
		t.Fatalf("ignore-lease put dropped the lease: %v", kv)
	}
	// Without WithIgnoreLease a put sets the lease it names: none.
	try(c.Put(ctx, "/p/k", "", WithIgnoreValue())).must(t)
	if kv := try(c.Get(ctx, "/p/k")).must(t).Kvs[0]; string(kv.Value) != "v2" || kv.Lease != 0 || kv.Version != 3 {
		t.Fatalf("after an ignore-value put: %v", kv)
	}
	if r := try(c.Put(ctx, "/p/new", "x", WithPrevKV())).must(t); r.PrevKv != nil {
		t.Fatalf("prev kv of a new key: %v", r.PrevKv)
	}
}

func testDelete(t *testing.T, c *Client, _ string) {
	ctx := testCtx(t)
	// "~" sorts after the other subtests' keys, so from-key stays here.
	for _, k := range []string{"~d/a", "~d/b", "~d/c", "~d/d", "~d/e"} {
		try(c.Put(ctx, k, "v"+k)).must(t)
	}
	tests := []struct {
		name    string
		key     string
		opts    []OpOption
		deleted int64
		prev    string
	}{
		{"single", "~d/a", []OpOption{WithPrevKV()}, 1, "~d/a"},
		{"missing", "~d/a", nil, 0, ""},
		{"range", "~d/b", []OpOption{WithRange("~d/d"), WithPrevKV()}, 2, "~d/b,~d/c"},
		{"from key", "~d/e", []OpOption{WithFromKey()}, 1, ""},
		{"prefix", "~d/", []OpOption{WithPrefix()}, 1, ""},
	}
	for _, tt := range tests {
		r, err := c.Delete(ctx, tt.key, tt.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var prev []string
		for _, kv := range r.PrevKvs {
			prev = append(prev, string(kv.Key))
		}
		if r.Deleted != tt.deleted || strings.Join(prev, ",") != tt.prev {
			t.Errorf("%s: deleted %d prev %v, want %d %q", tt.name, r.Deleted, prev, tt.deleted, tt.prev)
		}
	}
}

func testTxn(t *testing.T, c *Client, _ string) {
	ctx := testCtx(t)
	put := try(c.Put(ctx, "/t/a", "1")).must(t)
	try(c.Put(ctx, "/t/b", "1")).must(t)
	rev := put.Header.Revision
	tests := []struct {
		name string
		cmp  Cmp
		want bool
	}{
		{"value", Compare(Value("/t/a"), "=", "1"), true},
		{"value bytes", Compare(Value("/t/a"), "!=", []byte("1")), false},
		{"version", Compare(Version("/t/a"), "=", 1), true},
		{"create", Compare(CreateRevision("/t/a"), "=", rev), true},
		{"mod", Compare(ModRevision("/t/a"), ">", rev), false},
		{"lease", Compare(LeaseValue("/t/a"), "=", 0), true},
		{"missing key has version 0", Compare(Version("/t/none"), "=", 0), true},
		{"prefix holds for all", Compare(Value("/t/").WithPrefix(), "=", "1"), true},
		{"range", Compare(Version("/t/a").WithRange("/t/c"), "<", 1), false},
	}
	for _, tt := range tests {
		r, err := c.Txn(ctx).If(tt.cmp).Then(OpGet("/t/a")).Else(OpGet("/t/b"), OpGet("/t/a")).Commit()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if r.Succeeded != tt.want || len(r.Responses) != map[bool]int{true: 1, false: 2}[tt.want] {
			t.Errorf("%s: succeeded %v with %d responses", tt.name, r.Succeeded, len(r.Responses))
		}
	}
	r := try(c.Txn(ctx).Then(
		OpPut("/t/c", "3", WithPrevKV()),
		OpDelete("/t/b", WithPrevKV()),
		OpTxn([]Cmp{Compare(Value("/t/a"), "=", "1")}, []Op{OpGet("/t/", WithPrefix(), WithCountOnly())}, nil),
	).Commit()).must(t)
	nested := r.Responses[2].GetResponseTxn()
	if !r.Succeeded || r.Responses[1].GetResponseDeleteRange().Deleted != 1 || !nested.Succeeded ||
		nested.Responses[0].GetResponseRange().Count != 2 {
		t.Fatalf("txn with nested txn: %v", r)
	}
	if _, err := c.Txn(ctx).If(Compare(Value("/t/a"), "~", "1")).Commit(); err == nil {
		t.Fatal("unknown compare operator was accepted")
	}
	if _, err := c.Txn(ctx).If(Compare(Version("/t/a"), "=", "one")).Commit(); err == nil {
		t.Fatal("string value for a version compare was accepted")
	}
}

func testDo(t *testing.T, c *Client, _ string) {
	ctx := testCtx(t)
	if r := try(c.Do(ctx, OpPut("/do/k", "v"))).must(t); r.Put == nil || r.Get != nil {
		t.Fatalf("do put: %+v", r)
	}
	if r := try(c.Do(ctx, OpGet("/do/k"))).must(t); r.Get == nil || string(r.Get.Kvs[0].Value) != "v" {
		t.Fatalf("do get: %+v", r)
	}
	if r := try(c.Do(ctx, OpDelete("/do/k"))).must(t); r.Del == nil || r.Del.Deleted != 1 {
		t.Fatalf("do delete: %+v", r)
	}
	if r := try(c.Do(ctx, OpTxn(nil, []Op{OpGet("/do/k")}, nil))).must(t); r.Txn == nil || !r.Txn.Succeeded {
		t.Fatalf("do txn: %+v", r)
	}
	if _, err := c.Do(ctx, Op{}); err == nil {
		t.Fatal("empty op accepted")
	}
}

func testGetStream(t *testing.T, c *Client, _ string) {
	ctx := testCtx(t)
	value := strings.Repeat("x", 64*1024)
	for i := range 40 { // 2.5 MiB: more than one chunk
		try(c.Put(ctx, fmt.Sprintf("/s/%03d", i), value)).must(t)
	}
	for _, opts := range [][]OpOption{
		{WithPrefix()},
		{WithPrefix(), WithLimit(5)},
		{WithPrefix(), WithKeysOnly(), WithSort(SortByKey, SortAscend)},
		{WithPrefix(), WithCountOnly()},
	} {
		want := try(c.Get(ctx, "/s/", opts...)).must(t)
		got := try(c.GetStream(ctx, "/s/", opts...)).must(t)
		if keys(got) != keys(want) || got.Count != want.Count || got.More != want.More ||
			got.Header.GetRevision() != want.Header.GetRevision() {
			t.Errorf("stream %d keys count %d more %v, get %d keys count %d more %v",
				len(got.Kvs), got.Count, got.More, len(want.Kvs), want.Count, want.More)
		}
	}
	if _, err := c.GetStream(ctx, "/s/", WithRev(1<<40)); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("stream at a future revision: %v", err)
	}
	// etcd streams only in key order; it refuses any other.
	if _, err := c.GetStream(ctx, "/s/", WithPrefix(), WithSort(SortByKey, SortDescend)); status.Code(err) != codes.Unimplemented {
		t.Fatalf("stream sorted by key, descending: %v", err)
	}
}

func testErrors(t *testing.T, c *Client, _ string) {
	ctx := testCtx(t)
	_, err := c.Get(ctx, "k", WithRev(1<<40))
	if !errors.Is(err, rpctypes.ErrFutureRev) || status.Code(err) != codes.OutOfRange ||
		err.Error() != "etcdserver: mvcc: required revision is a future revision" {
		t.Fatalf("future revision: %v (code %v)", err, status.Code(err))
	}
	if _, err := c.Put(ctx, "", "v"); !errors.Is(err, rpctypes.ErrEmptyKey) {
		t.Fatalf("empty key: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-short.Done()
	if _, err := c.Get(short, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired context: %v", err)
	}
}

func testCompact(t *testing.T, c *Client, _ string) {
	ctx := testCtx(t)
	first := try(c.Put(ctx, "/c/k", "1")).must(t).Header.Revision
	try(c.Put(ctx, "/c/k", "2")).must(t)
	try(c.Compact(ctx, first+1, WithCompactPhysical())).must(t)
	if _, err := c.Get(ctx, "/c/k", WithRev(first)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read below the compacted revision: %v", err)
	}
	if _, err := c.Compact(ctx, first); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("compact again below: %v", err)
	}
	if r := try(c.Get(ctx, "/c/k", WithRev(first+1))).must(t); string(r.Kvs[0].Value) != "2" {
		t.Fatalf("read at the compacted revision: %v", r.Kvs)
	}
}

func testClusterAndMaintenance(t *testing.T, c *Client, ep string) {
	ctx := testCtx(t)
	ml := try(c.MemberList(ctx)).must(t)
	if len(ml.Members) != 1 || ml.Members[0].ClientURLs[0] != "http://"+ep {
		t.Fatalf("member list: %v", ml)
	}
	if s := try(c.MemberList(ctx, WithSerializable())).must(t); len(s.Members) != 1 {
		t.Fatalf("serializable member list: %v", s)
	}
	for _, e := range []string{ep, "http://" + ep} {
		st := try(c.Status(ctx, e)).must(t)
		if st.Leader != ml.Members[0].ID || st.Version != "3.7.3" || st.DbSize == 0 {
			t.Fatalf("status of %s: %v", e, st)
		}
	}
	h1 := try(c.HashKV(ctx, ep, 0)).must(t)
	h2 := try(c.HashKV(ctx, ep, 0)).must(t)
	if h1.Hash != h2.Hash || h1.HashRevision != h2.HashRevision || h1.HashRevision == 0 {
		t.Fatalf("hash of unchanged data changed: %v then %v", h1, h2)
	}
	if h := try(c.HashKV(ctx, ep, h1.HashRevision-1)).must(t); h.HashRevision != h1.HashRevision-1 {
		t.Fatalf("hash at revision %d: %v", h1.HashRevision-1, h)
	}
	try(c.Defragment(ctx, ep)).must(t)
	if a := try(c.AlarmList(ctx)).must(t); len(a.Alarms) != 0 {
		t.Fatalf("alarms: %v", a.Alarms)
	}
	dead := deadEndpoint(t)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Status(short, dead); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("status of a dead endpoint: %v", err)
	}
}

// testFailOver gives a client dead endpoints around a live one, then
// takes down one of two live paths while reads are under way: every read
// succeeds, because the balancer only picks connected endpoints and reads
// that fail on a dying connection are repeated on the other.
func testFailOver(t *testing.T, _ *Client, ep string) {
	dead := deadEndpoint(t)
	c := newTestClient(t, Config{Endpoints: []string{dead, ep, "http://" + dead}, DialTimeout: time.Second})
	ctx := testCtx(t)
	try(c.Put(ctx, "/f/k", "v")).must(t)
	for i := range 30 {
		if _, err := c.Get(ctx, "/f/k"); err != nil {
			t.Fatalf("read %d with dead endpoints configured: %v", i, err)
		}
	}
	if _, err := c.MemberList(ctx); err != nil {
		t.Fatalf("member list with dead endpoints configured: %v", err)
	}

	a, b := startProxy(t, ep), startProxy(t, ep)
	c = newTestClient(t, Config{Endpoints: []string{a.addr(), b.addr()}})
	for i := range 200 {
		if i == 50 {
			a.close()
		}
		if _, err := c.Get(ctx, "/f/k"); err != nil {
			t.Fatalf("read %d, one of two proxies closed after read 50: %v", i, err)
		}
	}
	if b.conns() == 0 {
		t.Fatal("the surviving proxy never carried a connection")
	}
}

// proxy forwards TCP connections to a server until closed, when it drops
// every connection it carries, as a member going down would.
type proxy struct {
	l  net.Listener
	mu sync.Mutex
	cs []net.Conn
	n  int
}

func startProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l}
	t.Cleanup(p.close)
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.cs = append(p.cs, in, out)
			p.n++
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *proxy) close() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.cs {
		c.Close()
	}
	p.cs = nil
}

func testSetEndpoints(t *testing.T, _ *Client, ep string) {
	dead := deadEndpoint(t)
	c := newTestClient(t, Config{Endpoints: []string{dead}})
	short, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Get(short, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read with only a dead endpoint: %v", err)
	}
	if err := c.SetEndpoints(ep); err != nil {
		t.Fatal(err)
	}
	if got := c.Endpoints(); len(got) != 1 || got[0] != ep {
		t.Fatalf("endpoints: %v", got)
	}
	try(c.Get(testCtx(t), "k")).must(t)
	if err := c.SetEndpoints("https://" + ep); err == nil {
		t.Fatal("switching a plain-text client to TLS was accepted")
	}
}

// testContextEndsClient: cancelling Config.Context closes the client.
func testContextEndsClient(t *testing.T, _ *Client, ep string) {
	parent, cancel := context.WithCancel(context.Background())
	c := newTestClient(t, Config{Endpoints: []string{ep}, Context: parent})
	try(c.Get(testCtx(t), "k")).must(t)
	cancel()
	<-c.Ctx().Done()
	// The connection closes right after, on a goroutine of its own.
	var err error
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err = c.Get(testCtx(t), "k"); err != nil {
			break
		}
	}
	if status.Code(err) != codes.Canceled {
		t.Fatalf("call after the client's context ended: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close after the context ended: %v", err)
	}
}

// deadEndpoint is a 127.0.0.1 port that refuses connections.
func deadEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
