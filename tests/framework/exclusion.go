package framework

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Exclusion proves mutual exclusion (of lock holders, of election
// leaders) without clocks. Whoever believes it holds says so with Enter,
// a txn that puts its name in the holder key only if that key is absent,
// and before letting go calls Exit, a txn that deletes the key only if
// it still holds its name. Either txn, when its condition fails, writes a
// violation key instead. Txns are linearizable, so if two believers'
// spans between those txns overlap, the later one to enter finds the key
// taken: any overlap leaves a violation, whatever the timing, and no
// violation means the spans were disjoint. A span covers the holding but
// for the instants between taking the lock and Enter, and between Exit
// and letting go. Processes record the same way with Command.
type Exclusion struct {
	C      *clientv3.Client // reads the history
	Prefix string           // of every key the records use
}

func (x Exclusion) holder() string { return x.Prefix + "holder" }

func (x Exclusion) violation(name, what string) string {
	return x.Prefix + "violation/" + name + "/" + what
}

// Enter records, through c, that name now believes it holds.
func (x Exclusion) Enter(ctx context.Context, c *clientv3.Client, name string) error {
	return x.record(ctx, c, name, "enter",
		clientv3.Compare(clientv3.CreateRevision(x.holder()), "=", 0), clientv3.OpPut(x.holder(), name))
}

// Exit records, through c, that name, which held, is about to let go.
func (x Exclusion) Exit(ctx context.Context, c *clientv3.Client, name string) error {
	return x.record(ctx, c, name, "exit",
		clientv3.Compare(clientv3.Value(x.holder()), "=", name), clientv3.OpDelete(x.holder()))
}

// Rename records that the holder old now goes by name: an election
// leader proclaiming a new value.
func (x Exclusion) Rename(ctx context.Context, c *clientv3.Client, old, name string) error {
	return x.record(ctx, c, old, "rename",
		clientv3.Compare(clientv3.Value(x.holder()), "=", old), clientv3.OpPut(x.holder(), name))
}

func (x Exclusion) record(ctx context.Context, c *clientv3.Client, name, what string, cond clientv3.Cmp, op clientv3.Op) error {
	r, err := c.Txn(ctx).If(cond).Then(op).
		Else(clientv3.OpPut(x.violation(name, what), name), clientv3.OpGet(x.holder())).Commit()
	if err != nil {
		return fmt.Errorf("%s: record %s: %w", name, what, err)
	}
	if !r.Succeeded {
		held := "nobody"
		if kvs := r.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			held = string(kvs[0].Value)
		}
		return fmt.Errorf("mutual exclusion broken: %s could not %s while %s held", name, what, held)
	}
	return nil
}

// exclusionScript makes the records of Exclusion with the CLI's txn
// around a hold. Its arguments are the holder's name, the CLI, the
// endpoint, the records' prefix and the hold in seconds. A failing txn
// call fails the script.
const exclusionScript = `set -e
name=$1 cli=$2 ep=$3 x=$4
txn() { printf '%s\n' "$@" | "$cli" --endpoints="$ep" txn >/dev/null; }
txn "create(\"${x}holder\") = \"0\"" "" "put ${x}holder $name" "" "put ${x}violation/$name/enter $name" ""
sleep "$5"
txn "value(\"${x}holder\") = \"$name\"" "" "del ${x}holder" "" "put ${x}violation/$name/exit $name" ""
`

// Command is a command line for a process to run while it holds (kvctl
// or etcdctl lock's command): it records as name with cli (kvctl or
// etcdctl) through endpoint, around a hold of d.
func (x Exclusion) Command(cli, endpoint, name string, d time.Duration) []string {
	return []string{"sh", "-c", exclusionScript, "sh", name, cli, endpoint, x.Prefix, fmt.Sprint(d.Seconds())}
}

// Start is the revision History reads from: take it before anyone
// records.
func (x Exclusion) Start(ctx context.Context, t testing.TB) int64 {
	t.Helper()
	r, err := x.C.Get(ctx, x.holder())
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision + 1
}

// History reads the records since rev, in revision order: the names put
// in the holder key, and the violations. A fence key written last marks
// the end, so nothing is missed and nothing waited for needlessly.
func (x Exclusion) History(ctx context.Context, t testing.TB, rev int64) (holders, violations []string) {
	t.Helper()
	fence, err := x.C.Put(ctx, x.Prefix+"~fence", "")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range x.C.Watch(wctx, x.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev)) {
		if err := wr.Err(); err != nil {
			t.Fatalf("watch the records: %v", err)
		}
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			switch {
			case ev.Kv.ModRevision >= fence.Header.Revision:
				return holders, violations
			case key == x.holder() && ev.Type == clientv3.EventTypePut:
				holders = append(holders, string(ev.Kv.Value))
			case strings.HasPrefix(key, x.Prefix+"violation/"):
				violations = append(violations, key)
			}
		}
	}
	t.Fatalf("watch of %s ended before the fence: %v", x.Prefix, ctx.Err())
	return nil, nil
}
