package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// alarmBehaviours list and disarm alarms on the shared server, which has
// none (it runs with the default quota); TestAlarmSameAsEtcdctl raises one.
var alarmBehaviours = []step{
	cmd("alarm", "list"),
	cmd("alarm", "list", "-w", "json"),
	cmd("alarm", "list", "-w", "fields"),
	cmd("alarm", "list", "-w", "protobuf"),
	cmd("alarm", "list", "-w", "table"),
	cmd("alarm", "list", "extra"),
	cmd("alarm", "disarm"),
	cmd("alarm", "disarm", "-w", "json"),
	cmd("alarm", "disarm", "-w", "fields"),
	cmd("alarm", "disarm", "extra"),
}

var (
	// How many writes fill the quota depends on how each server's file
	// grows, so revisions differ; so do the status figures.
	alarmRevRe = regexp.MustCompile(`"revision":\d+|"Revision" : \d+`)
	// etcdctl prints an alarm in protobuf-go's text form, whose spacing
	// changes from build to build; kvctl prints one space.
	alarmSpaceRe = regexp.MustCompile(`(memberID:\d+) +(alarm:)`)
	tookJSONRe   = regexp.MustCompile(`"took":"[^"]*"`)
)

func maskAlarm(s string) string {
	return alarmSpaceRe.ReplaceAllString(alarmRevRe.ReplaceAllString(s, "REV"), "$1 $2")
}

// TestAlarmSameAsEtcdctl fills a member with a 1 MiB quota until NOSPACE,
// on etcd v3.7.3 and on kvd at the same ports (so the member and cluster
// IDs agree), and runs the alarm commands, refused writes, status and the
// disarm with etcdctl and kvctl against both: every pairing must print
// what etcdctl prints against etcd.
func TestAlarmSameAsEtcdctl(t *testing.T) {
	etcd := framework.RequireBin(t, framework.EtcdBin())
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	kvd := framework.KvdBin(t)
	clientPort, peerPort := framework.PickPort(t), framework.PickPort(t)
	steps := []step{
		{args: []string{"alarm", "list"}, mask: maskAlarm},
		{args: []string{"alarm", "list", "-w", "json"}, mask: maskAlarm},
		{args: []string{"alarm", "list", "-w", "fields"}, mask: maskAlarm},
		{args: []string{"endpoint", "status", "-w", "json"}, mask: func(s string) string { return maskStatus(maskAlarm(s)) }},
		{args: []string{"endpoint", "health"}, mask: maskTook},
		{args: []string{"endpoint", "health", "-w", "json"}, mask: func(s string) string { return tookJSONRe.ReplaceAllString(s, `"took":"X"`) }},
		cmd("put", "/more", "x"),
		{args: []string{"txn"}, stdin: "\nput /more x\n\n\n"},
		cmd("lease", "grant", "60"),
		cmd("get", "/fill/000", "--keys-only"),
		cmd("del", "/fill/000"),
		{args: []string{"alarm", "disarm"}, mask: maskAlarm},
		cmd("alarm", "list"),
		// Still past the quota: the next write of a fill-sized value
		// raises it again. (Whether a tiny one still fits depends on how
		// close to the quota each server's file stopped.)
		cmd("put", "/more", strings.Repeat("v", 64*1024)),
		{args: []string{"alarm", "list"}, mask: maskAlarm},
		{args: []string{"alarm", "disarm", "-w", "json"}, mask: maskAlarm},
	}
	run := func(t *testing.T, cli, server string) []outcome {
		m := framework.StartMemberAt(t, server, "infra", clientPort, peerPort, "--quota-backend-bytes", fmt.Sprint(1<<20))
		defer m.Stop()
		fillPastQuota(t, m.Endpoint)
		out := make([]outcome, len(steps))
		for i, st := range steps {
			out[i] = runCLI(t, cli, m.Endpoint, st, &framework.LeaseVars{})
		}
		return out
	}
	golden := run(t, etcdctl, etcd)
	if !strings.Contains(string(golden[0].stdout), "alarm:NOSPACE") {
		t.Fatalf("etcd raised no NOSPACE: %s", golden[0])
	}
	for _, p := range []struct{ name, cli, server string }{
		{"kvctl-etcd", kvctl, etcd},
		{"etcdctl-kvd", etcdctl, kvd},
		{"kvctl-kvd", kvctl, kvd},
	} {
		t.Run(p.name, func(t *testing.T) {
			got := run(t, p.cli, p.server)
			for i, st := range steps {
				want := golden[i]
				if string(got[i].stdout) != string(want.stdout) || string(got[i].stderr) != string(want.stderr) || got[i].code != want.code {
					t.Errorf("%s %q differs from etcdctl against etcd:\n--- got\n%s\n--- want\n%s", p.name, st.args, got[i], want)
				}
			}
		})
	}
}

// fillPastQuota writes 64 KiB values until the server refuses one for
// want of space.
func fillPastQuota(t *testing.T, endpoint string) {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	value := strings.Repeat("v", 64*1024)
	for i := range 100 {
		if _, err = c.Put(ctx, fmt.Sprintf("/fill/%03d", i), value); err != nil {
			break
		}
	}
	if err == nil || err.Error() != rpctypes.ErrNoSpace.Error() {
		t.Fatalf("filling a 1 MiB quota: %v, want %q", err, rpctypes.ErrNoSpace)
	}
}
