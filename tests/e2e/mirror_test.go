package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/tests/framework"
)

// mirrorCase is one run of make-mirror: which servers, which prefix
// flags, and which side is restarted while the writer runs.
type mirrorCase struct {
	name          string
	srcStart      func(testing.TB, ...string) *framework.Member
	flags         []string
	destPrefix    string // where the source's /app/ keys land
	restartDest   bool
	restartSource bool
	// lostReply puts the destination behind a proxy that, for one write
	// of the mirror's, lets the write through and drops the answer.
	lostReply bool
}

// TestMakeMirror copies /app/ from a source under a writer (puts,
// overwrites, deletes and multi-key txns inside /app/, puts outside it)
// to a kvd destination, restarting a side midway. Once the writer has
// stopped and the mirror has caught up, the destination holds the
// source's /app/ keys and nothing else, and its history after the
// initial copy is the source's, revision for revision: every source
// revision arrived as exactly one destination revision with the same
// changes, none lost and none repeated across the restart.
func TestMakeMirror(t *testing.T) {
	cases := []mirrorCase{
		{name: "etcd-to-kvd/dest-prefix", srcStart: framework.StartEtcd, flags: []string{"--prefix", "/app/", "--dest-prefix", "/copy/"}, destPrefix: "/copy/", restartDest: true},
		{name: "etcd-to-kvd/no-dest-prefix", srcStart: framework.StartEtcd, flags: []string{"--prefix", "/app/", "--no-dest-prefix"}, destPrefix: ""},
		{name: "kvd-to-kvd/same-prefix", srcStart: framework.StartKvd, flags: []string{"--prefix", "/app/"}, destPrefix: "/app/", restartSource: true, restartDest: true},
		{name: "kvd-to-kvd/lost-reply", srcStart: framework.StartKvd, flags: []string{"--prefix", "/app/", "--dest-prefix", "/b/"}, destPrefix: "/b/", lostReply: true},
	}
	kvctl := framework.BuildKvctl(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runMirrorCase(t, kvctl, tc) })
	}
}

func runMirrorCase(t *testing.T, kvctl string, tc mirrorCase) {
	src := tc.srcStart(t)
	dst := framework.StartKvd(t)
	sc, dc := newClient(t, src.Endpoint), newClient(t, dst.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i := range 30 {
		mustDo(ctx, t, sc, client.OpPut(fmt.Sprintf("/app/k%02d", i), fmt.Sprint("base", i)))
	}
	mustDo(ctx, t, sc, client.OpPut("/other", "not mirrored"))

	dest := dst.Endpoint
	var proxy *framework.Proxy
	if tc.lostReply {
		proxy = framework.StartProxy(t, dst.Endpoint)
		dest = proxy.Addr()
	}
	p := framework.StartProcess(t, framework.Invocation{
		Bin: kvctl, Endpoints: src.Endpoint, Timeout: 90 * time.Second,
		Args: append(append([]string{"--command-timeout", "500ms", "make-mirror", "--print-interval", "200ms"}, tc.flags...), dest),
	})
	waitMirrored(ctx, t, p, dc, tc.destPrefix, 30)
	startRev := mustDo(ctx, t, sc, client.OpGet("/other")).Get.Header.Revision

	rng := rand.New(rand.NewPCG(7, uint64(len(tc.name))))
	for i := range 300 {
		if i == 100 && tc.restartDest {
			dst.Stop()
		}
		if i == 150 && tc.restartDest {
			// Down for longer than the mirror's call timeout, so that
			// its writes fail rather than wait.
			time.Sleep(2 * time.Second)
			dst.Start()
		}
		if i == 100 && tc.lostReply {
			waitCaughtUp(ctx, t, p, sc, dc, tc.destPrefix)
			proxy.DropReplies()
			mustDo(ctx, t, sc, client.OpPut("/app/lost", "reply"))
			waitMirrored(ctx, t, p, dc, tc.destPrefix+"lost", 1)
			proxy.Heal()
		}
		if i == 200 && tc.restartSource {
			src.Stop()
			src.Start()
		}
		mustDo(ctx, t, sc, randomMirrorOp(rng))
	}
	waitCaughtUp(ctx, t, p, sc, dc, tc.destPrefix)
	srcChanges := changesByRevision(ctx, t, sc, "/app/", startRev+1)
	dstChanges := changesByRevision(ctx, t, dc, tc.destPrefix, 1)
	if len(dstChanges) < len(srcChanges) {
		t.Fatalf("destination has %d revisions, source %d since the copy", len(dstChanges), len(srcChanges))
	}
	tail := dstChanges[len(dstChanges)-len(srcChanges):]
	for i, s := range srcChanges {
		if translated := translate(s, "/app/", tc.destPrefix); !slices.Equal(translated, tail[i]) {
			t.Fatalf("source revision %d of %d arrived as %v, want %v", i+1, len(srcChanges), tail[i], translated)
		}
	}
	// The initial copy is one put per key, as etcdctl's.
	if n := len(dstChanges) - len(srcChanges); n != 30 {
		t.Fatalf("destination has %d revisions before the followed changes, want one per copied key (30)", n)
	}
}

// waitCaughtUp waits until the destination holds the source's /app/ keys
// under destPrefix, and nothing else.
func waitCaughtUp(ctx context.Context, t *testing.T, p *framework.Process, sc, dc *client.Client, destPrefix string) {
	t.Helper()
	want := mirrorExpected(ctx, t, sc, destPrefix)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := keyValues(ctx, t, dc, "")
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) || p.Exited() {
			out, errOut := p.Output()
			t.Fatalf("destination never matched the source:\n got %v\nwant %v\nmirror stdout %q stderr %q", got, want, out, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustDo(ctx context.Context, t *testing.T, c *client.Client, op client.Op) client.OpResponse {
	t.Helper()
	for {
		resp, err := c.Do(ctx, op)
		if err == nil {
			return resp
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		// A write refused while a restarted member elects itself is
		// repeated; nothing else in these tests fails.
		time.Sleep(50 * time.Millisecond)
	}
}

// randomMirrorOp is one write of the mix the mirror follows.
func randomMirrorOp(rng *rand.Rand) client.Op {
	key := func() string { return fmt.Sprintf("/app/k%02d", rng.IntN(40)) }
	switch n := rng.IntN(10); {
	case n < 4:
		return client.OpPut(key(), fmt.Sprint("v", rng.Int()))
	case n < 6:
		return client.OpDelete(key())
	case n < 7:
		return client.OpPut(fmt.Sprintf("/appendix/%d", rng.IntN(5)), "outside the prefix")
	case n < 8:
		return client.OpDelete(fmt.Sprintf("/app/k%d", rng.IntN(4)), client.WithPrefix())
	default:
		a, b := rng.IntN(20), 20+rng.IntN(20)
		return client.OpTxn(nil, []client.Op{
			client.OpPut(fmt.Sprintf("/app/k%02d", a), fmt.Sprint("t", rng.Int())),
			client.OpDelete(fmt.Sprintf("/app/k%02d", b)),
			client.OpPut("/elsewhere", "outside the prefix"),
		}, nil)
	}
}

// waitMirrored waits for the initial copy of n keys.
func waitMirrored(ctx context.Context, t *testing.T, p *framework.Process, dc *client.Client, prefix string, n int) {
	t.Helper()
	for len(keyValues(ctx, t, dc, prefix)) != n {
		if ctx.Err() != nil || p.Exited() {
			out, errOut := p.Output()
			t.Fatalf("initial copy incomplete: stdout %q stderr %q", out, errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mirrorExpected is the source's /app/ keys as the destination should
// hold them.
func mirrorExpected(ctx context.Context, t *testing.T, sc *client.Client, destPrefix string) []string {
	var out []string
	for _, kv := range keyValues(ctx, t, sc, "/app/") {
		out = append(out, destPrefix+strings.TrimPrefix(kv, "/app/"))
	}
	slices.Sort(out)
	return out
}

// keyValues lists "key=value" under prefix, sorted.
func keyValues(ctx context.Context, t *testing.T, c *client.Client, prefix string) []string {
	t.Helper()
	resp := mustDo(ctx, t, c, client.OpGet(prefix, client.WithPrefix())).Get
	out := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key)+"="+string(kv.Value))
	}
	slices.Sort(out)
	return out
}

// changesByRevision reads the history under prefix from rev to now
// through a watch: one sorted list of "PUT key=value" or "DELETE key" per
// revision that changed something there. The watch has delivered all of
// it once a progress notice at now or later arrives; etcd answers a
// request for one only once the watch has caught up, so it is asked again
// until then.
func changesByRevision(ctx context.Context, t *testing.T, c *client.Client, prefix string, rev int64) [][]string {
	t.Helper()
	now := mustDo(ctx, t, c, client.OpGet("/")).Get.Header.Revision
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out [][]string
	last := int64(0)
	wch := c.Watch(wctx, prefix, client.WithPrefix(), client.WithRev(rev))
	ask := time.NewTicker(200 * time.Millisecond)
	defer ask.Stop()
	for {
		var resp client.WatchResponse
		select {
		case <-ask.C:
			_ = c.RequestProgress(wctx)
			continue
		case r, ok := <-wch:
			if !ok {
				t.Fatalf("history read ended early: %v", ctx.Err())
			}
			resp = r
		}
		if resp.IsProgressNotify() && resp.Header.Revision >= now {
			for _, c := range out {
				slices.Sort(c)
			}
			return out
		}
		for _, ev := range resp.Events {
			change := "DELETE " + string(ev.Kv.Key)
			if ev.Type == mvccpb.PUT {
				change = "PUT " + string(ev.Kv.Key) + "=" + string(ev.Kv.Value)
			}
			if ev.Kv.ModRevision != last {
				out = append(out, nil)
				last = ev.Kv.ModRevision
			}
			out[len(out)-1] = append(out[len(out)-1], change)
		}
	}
}

func translate(changes []string, from, to string) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		op, rest, _ := strings.Cut(c, " ")
		out[i] = op + " " + to + strings.TrimPrefix(rest, from)
	}
	slices.Sort(out)
	return out
}

// TestMakeMirrorWhileCopying writes to the source from before the mirror
// starts until well after its initial copy of 1000 keys (the count it
// prints passes 1000), so that changes land before, during and after the
// revision the copy is taken at: none may be lost.
func TestMakeMirrorWhileCopying(t *testing.T) {
	kvctl := framework.BuildKvctl(t)
	src := framework.StartEtcd(t)
	dst := framework.StartKvd(t)
	sc, dc := newClient(t, src.Endpoint), newClient(t, dst.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i := range 1000 {
		mustDo(ctx, t, sc, client.OpPut(fmt.Sprintf("/app/base/%04d", i), "v"))
	}
	// Every change is to a key no other change touches, so that a lost
	// one cannot be hidden by a later one.
	n := 0
	write := func() {
		n++
		op := client.OpPut(fmt.Sprintf("/app/w/%05d", n), fmt.Sprint(n))
		switch n % 4 {
		case 0:
			op = client.OpDelete(fmt.Sprintf("/app/base/%04d", n/4%1000))
		case 1:
			op = client.OpPut("/appendix", fmt.Sprint(n))
		}
		mustDo(ctx, t, sc, op)
	}
	for range 50 {
		write()
	}
	p := framework.StartProcess(t, framework.Invocation{
		Bin: kvctl, Endpoints: src.Endpoint, Timeout: 90 * time.Second,
		Args: []string{"make-mirror", "--prefix", "/app/", "--dest-prefix", "/copy/", "--print-interval", "100ms", dst.Endpoint},
	})
	for !copied(p, 1000) {
		if ctx.Err() != nil || p.Exited() {
			t.Fatalf("the copy did not finish: %v", p)
		}
		write()
	}
	for range 200 {
		write()
	}
	waitCaughtUp(ctx, t, p, sc, dc, "/copy/")
}

// copied says whether the mirror has printed a count of at least n.
func copied(p *framework.Process, n int) bool {
	out, _ := p.Output()
	lines := strings.Fields(out)
	if len(lines) == 0 {
		return false
	}
	var last int
	_, err := fmt.Sscan(lines[len(lines)-1], &last)
	return err == nil && last >= n
}
