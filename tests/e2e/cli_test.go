package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
)

// step is one command line of a behaviour, run with the CLI under test.
type step struct {
	args  []string
	stdin string
	// mask hides fields that legitimately differ between servers or runs
	// (versions, sizes, timings, raft indexes) before outputs are compared.
	mask func(string) string
	// grants names the lease the step grants. Lease IDs are the server's
	// choice: the ID read from this step's output replaces {{NAME}} in
	// later steps' args, and every output shows it as <NAME>.
	grants string
	// interruptAfter stops a command that runs until interrupted (elect)
	// with SIGINT after this long; it then ends by itself.
	interruptAfter time.Duration
}

func cmd(args ...string) step { return step{args: args} }

// behaviours run in order on one fresh server, so revisions line up across
// every pairing. A later issue adds a list of its commands here, in a file
// of its own, and gets every pairing of CLI and server for free.
var behaviours = slices.Concat(coreBehaviours, opsBehaviours, defragBehaviours, alarmBehaviours, snapshotBehaviours, mirrorBehaviours)

// coreBehaviours are the key-value, watch, lease, lock, election, member
// and RBAC commands.
var coreBehaviours = []step{
	cmd("put", "/key1", "value1"),
	cmd("put", "/key2", "value2"),
	cmd("put", "/key3", "value3"),
	cmd("put", "/other", "x y z"),
	cmd("get", "/key1", "/key3"),
	cmd("get", "--prefix", "/key", "--limit", "2"),
	cmd("get", "--from-key", "/key1"),
	cmd("get", "/key1", "--rev=2"),
	cmd("get", "/key1", "--print-value-only"),
	cmd("get", "/key1", "--hex"),
	cmd("get", "--prefix", "/", "--keys-only"),
	cmd("get", "--prefix", "/", "--count-only"),
	cmd("get", "--prefix", "/", "--count-only", "-w", "json"),
	cmd("get", "--prefix", "/", "--sort-by=MODIFY", "--order=DESCEND"),
	cmd("get", "--prefix", "/", "--sort-by=VALUE", "--order=ASCEND", "--limit", "3"),
	cmd("get", "--prefix", "/", "-w", "json"),
	cmd("get", "/key1", "-w", "fields"),
	cmd("get", "/key1", "-w", "protobuf"),
	cmd("get", "--prefix", "/", "-w", "table"),
	cmd("get", "--prefix", "/", "--stream"),
	cmd("get", "--prefix", "/", "--stream", "--limit", "2", "-w", "json"),
	cmd("get", "/", "--prefix", "--consistency=s", "--keys-only"),
	cmd("get", "/missing"),
	cmd("put", "/key1", "new", "--prev-kv"),
	cmd("put", "/key1", "--ignore-value"),
	cmd("put", "/key1", "v", "-w", "json"),
	cmd("put", "/key1", "v", "-w", "fields"),
	cmd("del", "/key3"),
	cmd("del", "--prev-kv", "/key1"),
	cmd("del", "/nothing"),
	{args: []string{"txn"}, stdin: "value(\"/key2\") = \"value2\"\n\nput /key2 changed\nget /key2\n\nput /never x\n\n"},
	{args: []string{"txn", "-i"}, stdin: "version(\"/key2\") > \"0\"\n\nget /key2\n\n\n"},
	{args: []string{"txn", "-w", "json"}, stdin: "mod(\"/key2\") > \"1000\"\n\nput /never x\n\nget /key2\ndel /other\n\n"},
	{args: []string{"txn", "-w", "fields"}, stdin: "create(\"/nokey\") = \"0\"\nversion(\"/key2\") != \"5\"\n\nput /t1 a\nput /t2 b\n\n\n"},
	cmd("del", "--prefix", "/key"),
	cmd("get", "--prefix", "/"),
	cmd("compaction", "5"),
	cmd("compaction", "7", "--physical"),
	cmd("get", "/key1", "--rev=2"),
	cmd("compaction", "3"),
	cmd("get", "/t1", "--rev=1000"),
	cmd("put", "", "x"),
	cmd("get"),
	cmd("put"),
	cmd("get", "/t1", "--sort-by=BOGUS"),
	// Refused requests change nothing: the last get shows the same revision.
	{args: []string{"put", "/big"}, stdin: strings.Repeat("x", 1600*1024)},
	{args: []string{"txn"}, stdin: "\n" + strings.Repeat("put /many x\n", 129) + "\n\n"},
	{args: []string{"txn"}, stdin: "\nput /dup a\nput /dup b\n\n\n"},
	{args: []string{"txn"}, stdin: "bogus(\"/x\") = \"1\"\n\n\n\n"},
	cmd("get", "--prefix", "/", "-w", "json"),
	cmd("member", "list"),
	cmd("member", "list", "-w", "table"),
	cmd("member", "list", "-w", "json"),
	{args: []string{"endpoint", "status", "-w", "table"}, mask: maskStatus},
	{args: []string{"endpoint", "status"}, mask: maskStatus},
	{args: []string{"endpoint", "health"}, mask: maskTook},
	{args: []string{"version"}, mask: maskVersion},
	// Leases: keys attached, listed, renewed, revoked with the lease.
	{args: []string{"lease", "grant", "60"}, grants: "L"},
	cmd("put", "--lease={{L}}", "/key4", "value4"),
	{args: []string{"lease", "timetolive", "{{L}}", "--keys"}, mask: maskRemaining},
	{args: []string{"lease", "timetolive", "{{L}}", "--keys", "-w", "json"}, mask: maskRemaining},
	{args: []string{"lease", "timetolive", "{{L}}", "--keys", "-w", "fields"}, mask: maskRemaining},
	cmd("lease", "list"),
	cmd("lease", "list", "-w", "json"),
	cmd("lease", "keep-alive", "--once", "{{L}}"),
	cmd("lease", "keep-alive", "--once", "{{L}}", "-w", "json"),
	// Renews at once, then every 20s: interrupted after one renewal.
	{args: []string{"lease", "keep-alive", "{{L}}"}, interruptAfter: 1500 * time.Millisecond},
	cmd("get", "/key4", "-w", "json"),
	cmd("lease", "revoke", "{{L}}"),
	cmd("get", "/key4"),
	cmd("lease", "timetolive", "{{L}}"),
	cmd("lease", "revoke", "{{L}}"),
	cmd("lease", "keep-alive", "--once", "{{L}}"),
	cmd("put", "--lease={{L}}", "/key5", "value5"),
	cmd("lease", "grant", "9999999999999"),
	cmd("lease", "grant"),
	cmd("lease", "revoke", "zz"),
	cmd("lease", "list"),
	// Locks and elections, in runs that end by themselves. Their
	// sessions' leases stay behind until they expire, as etcdctl leaves
	// them: no lease list after this.
	cmd("lock", "mylock", "--", "echo", "done"),
	cmd("lock", "mylock", "--", "sh", "-c", "exit 3"),
	cmd("lock"),
	cmd("get", "--prefix", "mylock"),
	{args: []string{"elect", "myelection", "p1"}, interruptAfter: 2 * time.Second, mask: maskSession},
	{args: []string{"elect", "-l", "myelection"}, interruptAfter: time.Second},
	cmd("get", "--prefix", "myelection"),
	cmd("elect", "myelection"),
	// Users, roles and auth (issue 10). Auth is switched off again at
	// the end, so steps added after these need no credentials.
	cmd("role", "add", "testrole"),
	cmd("role", "list"),
	cmd("role", "get", "testrole"),
	cmd("role", "grant-permission", "testrole", "read", "/permission"),
	cmd("role", "grant-permission", "testrole2", "readwrite", "/permission"),
	cmd("role", "add", "testrole2"),
	cmd("role", "grant-permission", "testrole2", "readwrite", "/permission"),
	cmd("role", "grant-permission", "testrole", "write", "/pfx/", "--prefix"),
	cmd("role", "grant-permission", "testrole", "readwrite", "/from", "--from-key"),
	cmd("role", "grant-permission", "testrole", "read", "/a", "/c"),
	cmd("role", "grant-permission", "testrole", "read", "", "--prefix"),
	cmd("role", "grant-permission", "testrole", "read", "/b", "/a"),
	cmd("role", "grant-permission", "testrole", "execute", "/x"),
	cmd("role", "get", "testrole"),
	cmd("role", "get", "testrole", "-w", "json"),
	cmd("role", "revoke-permission", "testrole", "/pfx/", "--prefix"),
	cmd("role", "revoke-permission", "testrole", "/from", "--from-key"),
	cmd("role", "revoke-permission", "testrole", "/a", "/c"),
	cmd("role", "revoke-permission", "testrole", "", "--prefix"),
	cmd("role", "revoke-permission", "testrole", "/permission"),
	cmd("role", "revoke-permission", "testrole", "/permission"),
	cmd("role", "del", "testrole"),
	cmd("role", "get", "testrole"),
	{args: []string{"user", "add", "testuser"}, stdin: "pw\npw\n", mask: maskStty},
	{args: []string{"user", "add", "baduser"}, stdin: "a\nb\n", mask: maskStty},
	cmd("user", "add", "testuser2", "--new-user-password=123456"),
	{args: []string{"user", "add", "testuser3", "--interactive=false"}, stdin: "secret3\n"},
	cmd("user", "add", "testuser4", "--no-password"),
	cmd("user", "add", "testuser2", "--new-user-password=x"),
	cmd("user", "list"),
	cmd("user", "list", "-w", "json"),
	cmd("user", "get", "testuser", "--detail"),
	{args: []string{"user", "passwd", "testuser"}, stdin: "pw2\npw2\n", mask: maskStty},
	cmd("user", "del", "testuser"),
	cmd("user", "get", "testuser"),
	{args: []string{"user", "add", "testuser"}, stdin: "pw\npw\n", mask: maskStty},
	cmd("role", "add", "testrole"),
	cmd("role", "grant-permission", "testrole", "read", "/permission"),
	cmd("user", "grant-role", "testuser", "testrole"),
	cmd("user", "grant-role", "testuser", "nosuchrole"),
	cmd("user", "grant-role", "testuser2", "testrole2"),
	cmd("user", "grant-role", "testuser3", "testrole"),
	cmd("user", "revoke-role", "testuser3", "testrole"),
	cmd("user", "revoke-role", "testuser3", "testrole"),
	cmd("user", "get", "testuser", "--detail"),
	cmd("auth", "status"),
	cmd("auth", "enable"),
	cmd("role", "add", "root"),
	cmd("user", "add", "root", "--new-user-password=123456"),
	cmd("user", "grant-role", "root", "root"),
	cmd("auth", "enable"),
	{args: []string{"put", "/permission", "all2", "--user=testuser2"}, stdin: "123456\n", mask: maskStty},
	cmd("--user=testuser2", "--password=123456", "put", "/permission", "all2"),
	cmd("--user=root:123456", "auth", "status"),
	cmd("get", "/permission"),
	cmd("get", "/permission", "--user=testuser:pw"),
	cmd("put", "/permission", "x", "--user=testuser:pw"),
	cmd("get", "/other", "--user=testuser:pw"),
	cmd("get", "/permission", "--user=testuser:wrong"),
	cmd("user", "list", "--user=testuser:pw"),
	cmd("auth", "disable", "--user=testuser:pw"),
	cmd("--user=root:123456", "user", "list"),
	cmd("--user=root:123456", "auth", "disable"),
	cmd("auth", "status"),
	cmd("get", "/permission"),
}

var (
	tookRe    = regexp.MustCompile(`took = [0-9.]+[µmn]?s`)
	versionRe = regexp.MustCompile(`(?m)^(etcdctl|kvctl) version: \S+$`)
	// In status output, mask the server version, DB sizes and raft
	// indexes: etcd replicates extra internal entries (cluster version,
	// member attributes), so its raft index runs ahead of kvd's.
	statusRe = regexp.MustCompile(`3\.7\.\d+|\d+(\.\d+)? [kMG]?B|\b\d+\b`)
	// Table padding follows the width of the masked values; squeeze it.
	padRe = regexp.MustCompile(`[ ─]+`)
	// etcd's client library logs retries as JSON lines on stderr; they are
	// diagnostics with timestamps, not the CLI's output.
	clientLogRe = regexp.MustCompile(`(?m)^\{"level":.*\n`)
)

var (
	remainingRe = regexp.MustCompile(`remaining\(\d+s\)|"ttl":\d+|"TTL" : \d+`)
	// A session's key ends in its lease ID in unpadded hex.
	sessionRe = regexp.MustCompile(`/[0-9a-f]{8,16}\b`)
)

// maskRemaining hides a lease's remaining TTL, which ticks.
func maskRemaining(s string) string { return remainingRe.ReplaceAllString(s, "remaining(N)") }

// maskSession hides the session lease in a lock's or leader's key.
func maskSession(s string) string { return sessionRe.ReplaceAllString(s, "/<session>") }

func maskTook(s string) string    { return tookRe.ReplaceAllString(s, "took = X") }
func maskVersion(s string) string { return versionRe.ReplaceAllString(s, "CLI version: X") }
func maskStatus(s string) string {
	return padRe.ReplaceAllString(statusRe.ReplaceAllString(s, "N"), " ")
}

// stty speaks on stderr when etcdctl asks for a password on a stdin that
// is not a terminal (it runs stty to turn echo off and on); kvctl asks
// the terminal itself and says nothing.
var sttyRe = regexp.MustCompile(`(?m)^stty: .*\n`)

func maskStty(s string) string { return sttyRe.ReplaceAllString(s, "") }

type outcome struct {
	stdout, stderr []byte
	code           int
}

func (o outcome) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", o.code, o.stdout, o.stderr)
}

// TestCLIBehaviourAllPairings runs the behaviours with etcdctl against
// etcd (the reference), then kvctl against etcd, etcdctl against kvd and
// kvctl against kvd, and requires each to match the reference byte for
// byte after masking.
func TestCLIBehaviourAllPairings(t *testing.T) {
	etcd := framework.RequireBin(t, framework.EtcdBin())
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	kvd := framework.KvdBin(t)
	clientPort, peerPort := framework.PickPort(t), framework.PickPort(t)
	t.Cleanup(removeCLISnapshot)

	run := func(t *testing.T, cli, server string) []outcome {
		m := framework.StartMemberAt(t, server, "infra", clientPort, peerPort)
		defer m.Stop()
		out := make([]outcome, len(behaviours))
		leases := &framework.LeaseVars{}
		for i, st := range behaviours {
			out[i] = runCLI(t, cli, m.Endpoint, st, leases)
		}
		return out
	}
	golden := run(t, etcdctl, etcd)
	pairings := []struct{ name, cli, server string }{
		{"kvctl-etcd", kvctl, etcd},
		{"etcdctl-kvd", etcdctl, kvd},
		{"kvctl-kvd", kvctl, kvd},
	}
	for _, p := range pairings {
		t.Run(p.name, func(t *testing.T) {
			got := run(t, p.cli, p.server)
			for i, st := range behaviours {
				want := golden[i]
				if !bytes.Equal(got[i].stdout, want.stdout) || !bytes.Equal(got[i].stderr, want.stderr) || got[i].code != want.code {
					t.Errorf("%s %q differs from etcdctl against etcd:\n--- got\n%s\n--- want\n%s", p.name, st.args, got[i], want)
				}
			}
		})
	}
}

// runCLI runs one step with a clean environment, so an operator's
// ETCDCTL_* variables cannot change the outcome.
func runCLI(t *testing.T, bin, endpoint string, st step, leases *framework.LeaseVars) outcome {
	t.Helper()
	args := append([]string{"--endpoints", endpoint}, leases.Expand(st.args)...)
	for i, a := range args {
		// {{ENDPOINT}} is the server's own endpoint, for commands that
		// name a second cluster (make-mirror into the same one).
		args[i] = strings.ReplaceAll(a, "{{ENDPOINT}}", endpoint)
	}
	c := exec.Command(bin, args...)
	c.Env = framework.CleanEnv()
	c.Stdin = strings.NewReader(st.stdin)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- c.Wait() }()
	var interrupt <-chan time.Time
	if st.interruptAfter > 0 {
		interrupt = time.After(st.interruptAfter)
	}
	select {
	case <-interrupt:
		_ = c.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = c.Process.Kill()
			<-done
			t.Fatalf("%s %q did not end 30s after SIGINT", bin, st.args)
		}
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.Process.Kill()
		<-done
		t.Fatalf("%s %q did not finish in 30s", bin, st.args)
	}
	if st.grants != "" {
		// A failed grant (a server without leases) leaves {{NAME}} as it
		// is, for the comparison to show.
		leases.Capture(st.grants, stdout.String(), st.args)
	}
	o := outcome{stdout: []byte(leases.Mask(stdout.String())), stderr: []byte(leases.Mask(clientLogRe.ReplaceAllString(stderr.String(), ""))), code: c.ProcessState.ExitCode()}
	if st.mask != nil {
		o.stdout = []byte(st.mask(string(o.stdout)))
		o.stderr = []byte(st.mask(string(o.stderr)))
	}
	return o
}
