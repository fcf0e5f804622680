package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
)

// leaseStep is one command of the lease comparison. Lease IDs are the
// server's choice and differ between runs, so a step that grants a lease
// names it: the ID is read from the step's output, {{NAME}} in later
// steps' arguments stands for it, and every output shows it as <NAME>.
type leaseStep struct {
	args []string
	// grants names the lease the step grants.
	grants string
	// norm masks what may differ beyond IDs (a remaining TTL that ticks).
	norm func(string) string
	// runsFor stops a command that does not end by itself (keep-alive)
	// after this long; its exit code is then -1.
	runsFor time.Duration
	// revoke names a lease to revoke from another process once the
	// command (keep-alive) has printed its first line: the command must
	// then end by itself.
	revoke string
}

func ls(args ...string) leaseStep { return leaseStep{args: args} }

func grant(name string, args ...string) leaseStep { return leaseStep{args: args, grants: name} }

// ticking is for timetolive steps: the remaining TTL ticks, and the
// attached keys come in any order.
func ticking(args ...string) leaseStep {
	return leaseStep{args: args, norm: func(s string) string { return sortedKeys(remainingTTL(s)) }}
}

var (
	remainingRe = regexp.MustCompile(`remaining\(\d+s\)|"ttl":\d+|"TTL" : \d+`)
	pointerRe   = regexp.MustCompile(`0x[0-9a-f]+`)
	spacesRe    = regexp.MustCompile(` {2,}`)
)

var clientLogRe = regexp.MustCompile(`(?m)^\{"level":.*\n?`)

// withoutClientLog drops the log lines etcd's client library writes on
// stderr (a retried call). It is all that lease steps mask by default:
// framework.Normalize would hide TTLs such as "TTL(60s)" as durations.
func withoutClientLog(s string) string { return clientLogRe.ReplaceAllString(s, "") }

// remainingTTL hides the remaining seconds of a lease, which may be one
// less in one run than in the other.
func remainingTTL(s string) string { return remainingRe.ReplaceAllString(s, "remaining(N)") }

// marshalDump hides what changes in etcdctl's dump of a response it
// cannot encode: a pointer, and protobuf's randomly doubled spaces.
func marshalDump(s string) string {
	return spacesRe.ReplaceAllString(pointerRe.ReplaceAllString(s, "0xPTR"), " ")
}

// renewals collapses repeated output, line by line or in blocks of up to
// eight lines (a renewal in the fields format): how many renewals a
// keep-alive prints in a few seconds depends on timing, not on the CLI.
func renewals(s string) string {
	var out []string
	for _, l := range strings.SplitAfter(s, "\n") {
		out = append(out, l)
		for size := 1; size <= 8 && 2*size <= len(out); size++ {
			n := len(out)
			if slices.Equal(out[n-2*size:n-size], out[n-size:]) {
				out = out[:n-size]
				break
			}
		}
	}
	return strings.Join(out, "")
}

var (
	attachedRe = regexp.MustCompile(`attached keys\(\[([^\]]*)\]\)`)
	jsonKeysRe = regexp.MustCompile(`"keys":\[([^\]]*)\]`)
	keyLinesRe = regexp.MustCompile(`(?m)(?:^"Key" : .*\n)+`)
)

// sortedKeys sorts the keys attached to a lease, which etcd lists in no
// particular order (from a map).
func sortedKeys(s string) string {
	sortList := func(re *regexp.Regexp, s, sep string) string {
		return re.ReplaceAllStringFunc(s, func(m string) string {
			sub := re.FindStringSubmatch(m)
			parts := strings.Split(sub[1], sep)
			slices.Sort(parts)
			return strings.Replace(m, sub[1], strings.Join(parts, sep), 1)
		})
	}
	s = sortList(attachedRe, s, " ")
	s = sortList(jsonKeysRe, s, ",")
	return keyLinesRe.ReplaceAllStringFunc(s, func(m string) string {
		lines := strings.SplitAfter(m, "\n")
		slices.Sort(lines)
		return strings.Join(lines, "")
	})
}

// runLeaseSteps runs steps with bin against ep, in order.
func runLeaseSteps(t *testing.T, bin, ep string, steps []leaseStep) []framework.Result {
	t.Helper()
	ids := &framework.LeaseVars{}
	out := make([]framework.Result, len(steps))
	for i, st := range steps {
		var r framework.Result
		args := ids.Expand(st.args)
		switch {
		case st.revoke != "":
			r = runUntilRevoked(t, bin, ep, args, ids.Expand([]string{"{{" + st.revoke + "}}"})[0])
		case st.runsFor > 0:
			r = framework.Run(t, framework.Invocation{Bin: bin, Endpoints: ep, Args: args, Timeout: st.runsFor, RunsOn: true})
		default:
			r = framework.Run(t, framework.Invocation{Bin: bin, Endpoints: ep, Args: args})
		}
		if st.grants != "" {
			if !ids.Capture(st.grants, r.Stdout, args) {
				t.Fatalf("no lease ID for %s in %q", st.grants, r.Stdout)
			}
		}
		norm := withoutClientLog
		if st.norm != nil {
			norm = func(s string) string { return st.norm(withoutClientLog(s)) }
		}
		out[i] = framework.Result{Stdout: norm(ids.Mask(r.Stdout)), Stderr: norm(ids.Mask(r.Stderr)), Code: r.Code}
	}
	return out
}

// runUntilRevoked starts the command, revokes the lease (hex ID) once
// the command printed a line, and waits for the command to end.
func runUntilRevoked(t *testing.T, bin, ep string, args []string, id string) framework.Result {
	t.Helper()
	r := startCLI(t, bin, ep, nil, args...)
	r.waitFor(func(stdout, _ string) bool { return strings.Contains(stdout, "\n") })
	if res := framework.Run(t, framework.Invocation{Bin: bin, Endpoints: ep, Args: []string{"lease", "revoke", id}}); res.Code != 0 {
		t.Fatalf("revoke %s: %+v", id, res)
	}
	r.waitFor(func(string, string) bool { return false }) // until it exits, 20s at most
	if !r.exited() {
		t.Errorf("%s %q still runs 20s after its lease was revoked", bin, args)
	}
	return r.finish(false, func(s string) string { return s })
}

// leaseSteps run against a fresh server: every lease command in every
// output format, keys attached and removed with their lease, and the
// mistakes etcdctl refuses, in its words and exit codes.
var leaseSteps = []leaseStep{
	// Arguments refused before anything is sent, and unknown leases.
	ls("lease", "grant"),
	ls("lease", "grant", "1", "2"),
	ls("lease", "grant", "x"),
	{args: []string{"lease", "grant", "-5"}, norm: withoutUsage},
	ls("lease", "grant", "9999999999999"),
	ls("lease", "revoke"),
	ls("lease", "revoke", "zz"),
	ls("lease", "revoke", "12345678901234567890"),
	ls("lease", "revoke", "1234"),
	ls("lease", "timetolive"),
	ls("lease", "timetolive", "zz"),
	ls("lease", "timetolive", "zz", "--cert", ""),
	ls("lease", "timetolive", "1234"),
	ls("lease", "timetolive", "1234", "-w", "json"),
	ls("lease", "keep-alive"),
	ls("lease", "keep-alive", "zz"),
	ls("lease", "keep-alive", "--once", "1234"),
	ls("lease", "keep-alive", "1234"),
	ls("lease", "keep-alive", "1234", "-w", "json"),
	ls("lease", "list"),
	ls("lease", "list", "-w", "json"),
	ls("lease", "list", "-w", "bogus"),
	ls("put", "/l/0", "v", "--lease=1234"),
	// Grants in every format that shows the ID.
	grant("a", "lease", "grant", "60"),
	grant("b", "lease", "grant", "120", "-w", "json"),
	grant("c", "lease", "grant", "180", "-w", "fields"),
	grant("d", "lease", "grant", "240", "-w", "fields", "--hex"),
	grant("e", "lease", "grant", "300", "--hex"),
	grant("f", "lease", "grant", "360", "-w", "json", "--hex"),
	// Keys attached to leases.
	ls("put", "--lease={{a}}", "/l/1", "v1"),
	ls("put", "--lease={{a}}", "/l/2", "v2"),
	ls("put", "/l/3", "v3", "--lease={{b}}", "-w", "json"),
	ls("get", "/l/", "--prefix", "-w", "fields"),
	ls("get", "/l/", "--prefix", "-w", "fields", "--hex"),
	ls("get", "/l/", "--prefix", "-w", "json"),
	ls("put", "/l/3", "v3b", "--ignore-lease", "--prev-kv", "-w", "fields"),
	// timetolive in every format.
	ticking("lease", "timetolive", "{{a}}"),
	ticking("lease", "timetolive", "{{a}}", "--keys"),
	ticking("lease", "timetolive", "{{a}}", "--keys", "-w", "json"),
	ticking("lease", "timetolive", "{{a}}", "--keys", "-w", "json", "--hex"),
	ticking("lease", "timetolive", "{{a}}", "--keys", "-w", "fields"),
	ticking("lease", "timetolive", "{{a}}", "--keys", "-w", "fields", "--hex"),
	ticking("lease", "timetolive", "{{a}}", "--keys", "-w", "protobuf"),
	ticking("lease", "timetolive", "{{a}}", "-w", "table"),
	ticking("lease", "timetolive", "{{c}}", "--keys"),
	ticking("lease", "timetolive", "{{c}}", "--keys", "-w", "json"),
	ticking("lease", "timetolive", "{{b}}", "-w", "fields"),
	// list in every format.
	ls("lease", "list"),
	ls("lease", "list", "-w", "json"),
	ls("lease", "list", "-w", "json", "--hex"),
	ls("lease", "list", "-w", "fields"),
	ls("lease", "list", "-w", "fields", "--hex"),
	ls("lease", "list", "-w", "protobuf"),
	ls("lease", "list", "-w", "table"),
	// keep-alive --once in every format.
	ls("lease", "keep-alive", "--once", "{{a}}"),
	ls("lease", "keep-alive", "--once", "{{a}}", "-w", "json"),
	ls("lease", "keep-alive", "--once", "{{a}}", "-w", "fields"),
	ls("lease", "keep-alive", "--once", "{{a}}", "-w", "fields", "--hex"),
	ls("lease", "keep-alive", "--once", "{{a}}", "-w", "protobuf"),
	ls("lease", "keep-alive", "--once", "{{a}}", "-w", "table"),
	// Revoking takes the keys away; the lease is then unknown.
	ls("lease", "revoke", "{{a}}"),
	ls("get", "/l/", "--prefix"),
	ls("lease", "timetolive", "{{a}}"),
	ls("lease", "timetolive", "{{a}}", "--keys", "-w", "fields"),
	ls("lease", "revoke", "{{a}}"),
	ls("lease", "keep-alive", "--once", "{{a}}"),
	ls("lease", "keep-alive", "{{a}}"),
	ls("put", "--lease={{a}}", "/l/4", "v"),
	ls("lease", "revoke", "{{b}}", "-w", "json"),
	ls("lease", "revoke", "{{c}}", "-w", "fields"),
	ls("lease", "revoke", "{{d}}", "-w", "fields", "--hex"),
	ls("lease", "revoke", "{{e}}", "-w", "table"),
	{args: []string{"lease", "revoke", "{{f}}", "-w", "protobuf"}, norm: marshalDump},
	ls("lease", "list"),
	ls("get", "/l/", "--prefix", "-w", "json"),
	// The server's smallest TTL.
	grant("z", "lease", "grant", "0"),
	ticking("lease", "timetolive", "{{z}}"),
	ls("lease", "revoke", "{{z}}"),
	// keep-alive renews until interrupted, or until the lease is gone.
	grant("k", "lease", "grant", "3"),
	{args: []string{"lease", "keep-alive", "{{k}}"}, runsFor: 3500 * time.Millisecond, norm: renewals},
	{args: []string{"lease", "keep-alive", "{{k}}", "-w", "json"}, runsFor: 2500 * time.Millisecond, norm: renewals},
	{args: []string{"lease", "keep-alive", "{{k}}", "-w", "fields", "--hex"}, runsFor: 2500 * time.Millisecond, norm: renewals},
	{args: []string{"lease", "keep-alive", "{{k}}", "-w", "table"}, runsFor: 2500 * time.Millisecond},
	ticking("lease", "timetolive", "{{k}}"),
	{args: []string{"lease", "keep-alive", "{{k}}"}, revoke: "k", norm: renewals},
	grant("j", "lease", "grant", "3"),
	{args: []string{"lease", "keep-alive", "{{j}}", "-w", "json"}, revoke: "j", norm: renewals},
	// Formats that cannot show a grant refuse once it is made.
	ls("lease", "grant", "60", "-w", "table"),
	ls("lease", "grant", "60", "-w", "protobuf"),
}

// leaseServers are the servers kvctl is checked against, each fresh for
// its run; the reference is always etcdctl against etcd.
var leaseServers = []struct {
	name string
	bin  func(*testing.T) string
}{
	{name: "etcd", bin: func(t *testing.T) string { return framework.RequireBin(t, framework.EtcdBin()) }},
	{name: "kvd", bin: func(t *testing.T) string { return framework.KvdBin(t) }},
}

// TestLeaseSameAsEtcdctl runs leaseSteps with etcdctl against a fresh
// etcd, then with kvctl against a fresh server of each kind on the same
// ports and name (so cluster and member IDs match), and requires the
// same output and exit code from every step.
func TestLeaseSameAsEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("runs some 200 CLI processes and waits on keep-alives; skipped with -short")
	}
	etcd := framework.RequireBin(t, framework.EtcdBin())
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	clientPort, peerPort := framework.PickPort(t), framework.PickPort(t)
	run := func(t *testing.T, cli, server string) []framework.Result {
		m := framework.StartMemberAt(t, server, "lease-test", clientPort, peerPort)
		defer m.Stop()
		return runLeaseSteps(t, cli, m.Endpoint, leaseSteps)
	}
	want := run(t, etcdctl, etcd)
	for _, srv := range leaseServers {
		t.Run(srv.name, func(t *testing.T) {
			got := run(t, kvctl, srv.bin(t))
			for i, st := range leaseSteps {
				if got[i] != want[i] {
					t.Errorf("step %d %q differs\n--- kvctl: exit %d\nstdout:\n%s\nstderr:\n%s\n--- etcdctl: exit %d\nstdout:\n%s\nstderr:\n%s",
						i, st.args, got[i].Code, got[i].Stdout, got[i].Stderr, want[i].Code, want[i].Stdout, want[i].Stderr)
				}
			}
		})
	}
}
