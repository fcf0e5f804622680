package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// quotaBytes is small enough to fill in a few dozen writes.
const quotaBytes = 1 << 20

// TestQuotaNoSpaceAndRecovery fills a 3-member cluster past a 1 MiB quota:
// the write that does not fit gets etcd's error and raises NOSPACE, which
// every member lists and reports in its status, and which survives a
// restart; meanwhile puts, txns with a put (in either branch) and lease
// grants fail through every member without changing anything, while
// reads, read-only txns, deletes and compaction work. The operator's
// recovery (compact, defragment every member, disarm) restores writes.
func TestQuotaNoSpaceAndRecovery(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3, "--quota-backend-bytes", fmt.Sprint(quotaBytes))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c1 := client(t, ms[0].Endpoint)
	value := strings.Repeat("v", 64*1024)
	var filled int
	var err error
	for filled = 0; filled < 100; filled++ {
		if _, err = c1.Put(ctx, fmt.Sprintf("/fill/%03d", filled), value); err != nil {
			break
		}
	}
	if err == nil || err.Error() != rpctypes.ErrNoSpace.Error() {
		t.Fatalf("after %d puts of 64 KiB past a 1 MiB quota: err %v, want %q", filled, err, rpctypes.ErrNoSpace)
	}
	if filled < 5 {
		t.Fatalf("NOSPACE after only %d puts of 64 KiB under a 1 MiB quota", filled)
	}
	ml, err := c1.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raiser := memberID(ml, ms[0].Name)
	want := []*pb.AlarmMember{{MemberID: raiser, Alarm: pb.AlarmType_NOSPACE}}
	requireAlarms(ctx, t, ms, want)
	// /health says false for an alarm, unless excluded, as etcd's.
	for query, wantBody := range map[string]string{
		"":                 `{"health":"false","reason":"ALARM NOSPACE"}`,
		"?exclude=NOSPACE": `{"health":"true","reason":""}`,
		"?exclude=CORRUPT": `{"health":"false","reason":"ALARM NOSPACE"}`,
	} {
		if body := healthBody(t, ms[1], query); body != wantBody {
			t.Fatalf("/health%s of %s: %s, want %s", query, ms[1].Name, body, wantBody)
		}
	}

	// Alarms are stored: a restarted member lists and reports it before
	// anything new applies.
	ms[2].Stop()
	ms[2].Start()
	requireAlarms(ctx, t, ms, want)

	before := clientGet(ctx, t, c1, "/fill/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	for _, m := range ms {
		c := client(t, m.Endpoint)
		refusals := map[string]error{}
		_, refusals["put"] = c.Put(ctx, "/new", "x")
		_, refusals["txn put"] = c.Txn(ctx).Then(clientv3.OpDelete("/fill/000"), clientv3.OpPut("/new", "x")).Commit()
		// The branch taken only deletes, but the other one may put: the
		// cost is the dearer branch's, as etcd counts it.
		_, refusals["txn else put"] = c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision("/fill/000"), ">", 0)).
			Then(clientv3.OpDelete("/fill/001")).Else(clientv3.OpPut("/new", "x")).Commit()
		_, refusals["lease grant"] = c.Grant(ctx, 60)
		for what, err := range refusals {
			if err == nil || err.Error() != rpctypes.ErrNoSpace.Error() {
				t.Errorf("%s through %s with NOSPACE active: err %v, want %q", what, m.Name, err, rpctypes.ErrNoSpace)
			}
		}
	}
	after := clientGet(ctx, t, c1, "/fill/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if after.Count != before.Count || after.Header.Revision != before.Header.Revision {
		t.Fatalf("refused writes changed the store: %d keys at revision %d, then %d at %d",
			before.Count, before.Header.Revision, after.Count, after.Header.Revision)
	}
	if n := clientGet(ctx, t, c1, "/new").Count; n != 0 {
		t.Fatalf("a refused write left /new behind")
	}

	// What frees space works: reads, read-only txns, deletes, compaction.
	for _, m := range ms {
		c := client(t, m.Endpoint)
		if r := clientGet(ctx, t, c, "/fill/000"); r.Count != 1 {
			t.Fatalf("read through %s: %d keys", m.Name, r.Count)
		}
		if _, err := c.Txn(ctx).Then(clientv3.OpGet("/fill/", clientv3.WithPrefix(), clientv3.WithKeysOnly())).Commit(); err != nil {
			t.Fatalf("read-only txn through %s: %v", m.Name, err)
		}
	}
	del, err := client(t, ms[1].Endpoint).Delete(ctx, "/fill/", clientv3.WithPrefix())
	if err != nil || int(del.Deleted) != filled {
		t.Fatalf("delete with NOSPACE active: %v, deleted %v of %d", err, del, filled)
	}
	if _, err := c1.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compaction with NOSPACE active: %v", err)
	}
	for _, m := range ms {
		if _, err := c1.Defragment(ctx, m.Endpoint); err != nil {
			t.Fatalf("defragment %s with NOSPACE active: %v", m.Name, err)
		}
	}
	// Still refused until disarmed: the alarm, not the size, decides.
	if _, err := c1.Put(ctx, "/new", "x"); err == nil || err.Error() != rpctypes.ErrNoSpace.Error() {
		t.Fatalf("put before disarm: err %v, want %q", err, rpctypes.ErrNoSpace)
	}
	// Members whose own file is past the quota raised NOSPACE for
	// themselves as writes reached them, as etcd's do: disarm clears all.
	list, err := c1.AlarmList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dis, err := c1.AlarmDisarm(ctx, &clientv3.AlarmMember{})
	if err != nil || len(dis.Alarms) != len(list.Alarms) || !slices.ContainsFunc(dis.Alarms, func(a *pb.AlarmMember) bool {
		return a.MemberID == raiser
	}) {
		t.Fatalf("disarm: %v %v, listed before %v", dis, err, list.Alarms)
	}
	for _, a := range dis.Alarms {
		if a.Alarm != pb.AlarmType_NOSPACE {
			t.Fatalf("disarmed %v", a)
		}
	}
	requireAlarms(ctx, t, ms, nil)
	for _, m := range ms {
		if _, err := client(t, m.Endpoint).Put(ctx, "/new/"+m.Name, "x"); err != nil {
			t.Fatalf("put through %s after recovery: %v", m.Name, err)
		}
	}
}

// requireAlarms checks that every member lists exactly want and reports
// them in its status errors, as etcd words them.
func requireAlarms(ctx context.Context, t *testing.T, ms []*framework.Member, want []*pb.AlarmMember) {
	t.Helper()
	var wantErrs []string
	for _, a := range want {
		wantErrs = append(wantErrs, fmt.Sprintf("memberID:%d alarm:%s", a.MemberID, a.Alarm))
	}
	for _, m := range ms {
		c := client(t, m.Endpoint)
		list, err := c.AlarmList(ctx)
		if err != nil {
			t.Fatalf("alarm list through %s: %v", m.Name, err)
		}
		if !slices.EqualFunc(list.Alarms, want, func(a, b *pb.AlarmMember) bool {
			return a.MemberID == b.MemberID && a.Alarm == b.Alarm
		}) {
			t.Fatalf("alarms listed by %s: %v, want %v", m.Name, list.Alarms, want)
		}
		st, err := c.Status(ctx, m.Endpoint)
		if err != nil {
			t.Fatalf("status of %s: %v", m.Name, err)
		}
		if !slices.Equal(st.Errors, wantErrs) {
			t.Fatalf("status errors of %s: %q, want %q", m.Name, st.Errors, wantErrs)
		}
	}
}

func clientGet(ctx context.Context, t *testing.T, c *clientv3.Client, key string, opts ...clientv3.OpOption) *clientv3.GetResponse {
	t.Helper()
	r, err := c.Get(ctx, key, opts...)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return r
}

func healthBody(t *testing.T, m *framework.Member, query string) string {
	t.Helper()
	resp, err := http.Get(m.ClientURL() + "/health" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
