package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/kvd-io/kvd/tests/framework"
)

// step is shorthand for a script step with only arguments.
func step(args ...string) framework.Step { return framework.Step{Args: args} }

func withStdin(stdin string, args ...string) framework.Step {
	return framework.Step{Args: args, Stdin: stdin}
}

func masked(norm func(string) string, args ...string) framework.Step {
	return framework.Step{Args: args, Normalize: norm}
}

var usageRe = regexp.MustCompile(`(?s)Usage:.*`)

// withoutUsage drops the usage text cobra prints after a flag error: our
// help texts are our own, the error line before them must match.
func withoutUsage(s string) string { return usageRe.ReplaceAllString(framework.Normalize(s), "USAGE") }

var consistencyRe = regexp.MustCompile(`unknown consistency flag ".*"`)

// consistencyValue hides the value in "unknown consistency flag": for
// member list etcdctl quotes get's --consistency instead of the one given.
func consistencyValue(s string) string {
	return consistencyRe.ReplaceAllString(framework.Normalize(s), "unknown consistency flag X")
}

var debugLineRe = regexp.MustCompile(`(?m)^ETCDCTL_[A-Z_]+=.*$`)

// debugSettings keeps the settings --debug lists, not gRPC's log.
func debugSettings(s string) string {
	return strings.Join(debugLineRe.FindAllString(s, -1), "\n")
}

// script runs against a fresh server, so revisions, hashes and IDs line up
// between the two CLIs. Writes come first, reads of every kind after.
var script = []framework.Step{
	// put
	step("put", "/k/1", "v1"),
	step("put", "/k/2", "v2"),
	step("put", "/k/3", "value three"),
	withStdin("from stdin\nsecond line", "put", "/k/stdin"),
	step("put", "/k/1", "v1b", "--prev-kv"),
	step("put", "/k/1", "--ignore-value", "--prev-kv"),
	step("put", "/k/1", "v1c", "--ignore-lease"),
	step("put", "/k/1", "v1d", "--lease=0", "-w", "json"),
	step("put", "/k/1", "v1e", "--prev-kv", "-w", "fields"),
	step("put", "/k/1", "v1f", "--prev-kv", "-w", "fields", "--hex"),
	step("put", "/k/1", "v1g", "--prev-kv", "-w", "protobuf"),
	step("put", "/k/1", "v1h", "--prev-kv", "--hex"),
	step("put", "/k/4", "x", "-w", "table"),
	step("put", "/k/bin", "\xff\x01"),
	step("put", "--", "/k/dash", "-v"),
	step("put", "/k/1", "v", "--lease=zz"),
	step("put", "/k/1", "v", "--lease=1234"),
	step("put", "/k/1", "v", "--ignore-value"),
	step("put"),
	withStdin("", "put", "/k/1"),
	step("put", "", "empty key"),
	step("put", "/k/big", "0123456789abcdef", "--max-request-bytes", "10"),
	step("put", "/k/1", "v", "--max-request-bytes", "10", "--max-recv-bytes", "5"),
	// del
	step("put", "/d/a", "1"), step("put", "/d/b", "2"), step("put", "/d/c", "3"), step("put", "/d/d", "4"),
	step("put", "/d/e", "5"), step("put", "/d/f", "6"), step("put", "~e/a", "7"),
	step("del", "/d/a", "--prev-kv"),
	step("del", "/d/nothing"),
	step("del", "/d/b", "/d/c", "--range", "-w", "json"),
	step("del", "/d/c", "/d/d"), // warns and waits 2s
	step("del", "/d/e", "--prev-kv", "-w", "fields"),
	step("del", "/d/", "--prefix", "--prev-kv", "-w", "protobuf"),
	step("del", "~e/", "--from-key", "--prev-kv", "--hex"),
	step("put", "/d/x", "1"),
	step("del", "/d/x", "-w", "table"),
	step("del"),
	step("del", "a", "b", "c"),
	step("del", "/d/", "--prefix", "--from-key"),
	step("del", "/d/", "/e", "--prefix"),
	// txn
	withStdin("value(\"/k/2\") = \"v2\"\n\nput /k/2 changed\nget /k/2\ndel /k/4\n\nput /never x\n\n", "txn"),
	withStdin("version(\"/k/2\") > \"0\"\nmod(\"/k/2\") < \"1000\"\n\nget /k/2 --prefix\n\n\n", "txn", "-i"),
	withStdin("c(\"/k/2\") = \"0\"\n\nput /never x\n\nget /k/ --prefix --keys-only\nput /t/1 'single quoted'\n\n", "txn", "-w", "json"),
	withStdin("ver(\"/none\") = \"0\"\nval(\"/k/3\") != \"x\"\n\nput /t/2 b --prev-kv\nget /k/3\ndel /t/1 --prev-kv\n\n\n", "txn", "-w", "fields"),
	withStdin("m(\"/k/3\") > \"1\"\n\nget /k/3\n\n\n", "txn", "-w", "protobuf"),
	withStdin("\nget /k/3\n\n\n", "txn", "--hex"),
	withStdin("\nget /k/3\n\n\n", "txn", "-w", "table"),
	withStdin("\n\n\n", "txn", "extra"),
	withStdin("mod(\"/k/1\") > \"0\"\n\nput /k/1 x", "txn"),
	withStdin("", "txn"),
	withStdin("mod(\"/k/1\") > \"x\"\n\n\n\n", "txn"),
	withStdin("bogus(\"/k/1\") > \"1\"\n\n\n\n", "txn"),
	withStdin("mod(\"/k/1\") >\n\n\n\n", "txn"),
	withStdin("no parenthesis\n\n\n\n", "txn"),
	withStdin("\nget\n\n\n", "txn"),
	withStdin("\nwatch /k/1\n\n\n", "txn"),
	withStdin("\nput /k/1\n\n\n", "txn"),
	withStdin("\nget /k/1 --prefix --from-key\n\n\n", "txn"),
	withStdin("\nget /k/1 --consistency=x\n\n\n", "txn"),
	withStdin("\nget \"/k/\\q\"\n\n\n", "txn"),
	{Args: []string{"txn"}, Stdin: "\nput /k/1 v --bogus\n\n\n", Normalize: withoutUsage},
	{Args: []string{"txn"}, Stdin: "\n" + strings.Repeat("put /many x\n", 129) + "\n\n"},
	withStdin("\nput /dup a\nput /dup b\n\n\n", "txn"),
	// get
	step("get", "/k/1"),
	step("get", "/k/1", "/k/3"),
	step("get", "/k/", "--prefix"),
	step("get", "", "--prefix", "--keys-only"),
	step("get", "", "--from-key", "--limit", "3"),
	step("get", "/k/2", "--from-key", "--keys-only"),
	step("get", "/k/", "--prefix", "--limit", "2", "-w", "json"),
	step("get", "/k/1", "--rev", "5"),
	step("get", "/k/1", "--rev", "100000"),
	step("get", "/k/", "--prefix", "--sort-by", "MODIFY", "--order", "DESCEND"),
	step("get", "/k/", "--prefix", "--sort-by", "value"),
	step("get", "/k/", "--prefix", "--sort-by", "CREATE", "--order", "descend"),
	step("get", "/k/", "--prefix", "--sort-by", "VERSION", "--order", "DESCEND", "--limit", "2"),
	step("get", "/k/", "--prefix", "--sort-by", "KEY", "--order", "DESCEND"),
	step("get", "/k/", "--prefix", "--sort-by", "BOGUS"),
	step("get", "/k/", "--prefix", "--order", "SIDEWAYS"),
	step("get", "/k/", "--prefix", "--print-value-only"),
	step("get", "/k/", "--prefix", "--print-value-only", "-w", "json"),
	step("get", "/k/", "--prefix", "--count-only", "-w", "fields"),
	step("get", "/k/", "--prefix", "--count-only"),
	step("get", "/k/", "--prefix", "--keys-only", "--count-only"),
	step("get", "/k/", "--prefix", "--from-key"),
	step("get", "/k/", "/l", "--prefix"),
	step("get", "/k/", "--prefix", "--consistency", "s", "-w", "fields"),
	step("get", "/k/1", "--consistency", "x"),
	step("get", "/k/", "--prefix", "--min-mod-rev", "6", "--max-mod-rev", "12", "--keys-only"),
	step("get", "/k/", "--prefix", "--min-create-rev", "3", "--max-create-rev", "4", "--keys-only"),
	step("get", "/k/", "--prefix", "--min-mod-rev", "9", "--max-mod-rev", "2"),
	step("get", "/k/", "--prefix", "--min-create-rev", "9", "--max-create-rev", "2"),
	step("get", "/k/", "--prefix", "--stream"),
	step("get", "/k/", "--prefix", "--stream", "--limit", "2", "-w", "json"),
	step("get", "/k/", "--prefix", "--stream", "--order", "DESCEND"),
	step("get", "/k/", "--prefix", "-w", "fields"),
	step("get", "/k/", "--prefix", "-w", "fields", "--hex"),
	step("get", "/k/", "--prefix", "-w", "json"),
	step("get", "/k/", "--prefix", "-w", "protobuf"),
	step("get", "/k/", "--prefix", "-w", "table"),
	step("get", "/k/", "--prefix", "--hex"),
	step("get", "/k/", "--prefix", "-w", "bogus"),
	step("get", "/missing"),
	step("get", "/missing", "-w", "json"),
	step("get"),
	{Args: []string{"get", "--bogus-flag", "/k/1"}, Normalize: withoutUsage},
	{Args: []string{"get", "/k/1", "--bogus-flag"}, Normalize: withoutUsage},
	// compaction
	step("compaction", "3"),
	step("compaction", "4", "--physical"),
	step("compaction", "2"),
	step("compaction", "100000"),
	step("compaction", "x"),
	step("compaction"),
	step("get", "/k/1", "--rev", "2"),
	// member
	step("member", "list"),
	step("member", "list", "-w", "table"),
	step("member", "list", "-w", "json"),
	step("member", "list", "-w", "json", "--hex"),
	step("member", "list", "-w", "fields"),
	step("member", "list", "-w", "fields", "--hex"),
	step("member", "list", "-w", "protobuf"),
	step("member", "list", "--consistency", "s"),
	{Args: []string{"member", "list", "--consistency", "q"}, Normalize: consistencyValue},
	step("memb", "li"),
	// endpoint
	masked(framework.NormalizeStatus, "endpoint", "status"),
	masked(framework.NormalizeStatus, "endpoint", "status", "-w", "table"),
	masked(framework.NormalizeStatus, "endpoint", "status", "-w", "json"),
	masked(framework.NormalizeStatus, "endpoint", "status", "-w", "fields"),
	masked(framework.NormalizeStatus, "endpoint", "status", "--cluster", "-w", "table"),
	step("endpoint", "status", "-w", "protobuf"),
	step("endpoint", "hashkv"),
	step("endpoint", "hashkv", "-w", "table"),
	step("endpoint", "hashkv", "-w", "json"),
	step("endpoint", "hashkv", "-w", "fields", "--cluster"),
	step("endpoint", "hashkv", "--rev", "5"),
	step("endpoint", "hashkv", "--rev", "2"),
	step("endpoint", "health"),
	step("endpoint", "health", "-w", "json"),
	step("endpoint", "health", "-w", "fields"),
	masked(framework.NormalizeStatus, "endpoint", "health", "-w", "table", "--cluster"),
	step("endpoint", "health", "-w", "protobuf"),
	// global flags and the environment
	step("version"),
	step("bogus"),
	step("get", "/k/1", "--cert", ""),
	step("get", "/k/1", "--cert", "/nonexistent.pem"),
	step("get", "/k/1", "--user", "root:secret"),
	step("get", "/k/1", "--user", "root", "--password", "secret", "-w", "json"),
	{Args: []string{"get", "/k/1", "--debug"}, Normalize: debugSettings},
	{Args: []string{"get", "/k/1"}, NoEndpoints: true, Env: []string{"ETCDCTL_ENDPOINTS=" + framework.EndpointVar, "ETCDCTL_WRITE_OUT=fields"}},
	{Args: []string{"get", "/k/1"}, NoEndpoints: true, Env: []string{"ETCDCTL_ENDPOINTS=" + framework.EndpointVar, "ETCDCTL_HEX=true", "ETCDCTL_UNKNOWN=1"}},
	{Args: []string{"get", "/k/1"}, NoEndpoints: true, Env: []string{"ETCDCTL_ENDPOINTS=" + framework.EndpointVar, "ETCDCTL_DIAL_TIMEOUT=bogus"}},
	{Args: []string{"get", "/k/1"}, Env: []string{"ETCDCTL_ENDPOINTS=" + framework.EndpointVar}},
	{Args: []string{"get", "/k/1", "-w", "json"}, NoEndpoints: true, Env: []string{"ETCDCTL_ENDPOINTS=" + framework.EndpointVar, "ETCDCTL_WRITE_OUT=fields"}},
	{Args: []string{"get"}, NoEndpoints: true, Env: []string{"ETCDCTL_WRITE_OUT=bogus"}},
	{Args: []string{"endpoint", "status", "-w", "table"}, NoEndpoints: true, Normalize: framework.NormalizeStatus,
		Env: []string{"ETCDCTL_ENDPOINTS=" + framework.EndpointVar, "ETCDCTL_CLUSTER=true"}},
	{Args: []string{"version"}, NoEndpoints: true, Env: []string{"ETCDCTL_ENDPOINTS=127.0.0.1:1"}},
	// check perf refuses to run over existing keys, and unknown loads
	step("check", "perf", "--prefix", "/k/"),
	step("check", "perf", "--load", "huge"),
	// check datascale likewise, then a whole small run with compaction
	// and defragmentation; only the memory figure differs between runs.
	step("check", "datascale", "--prefix", "/k/"),
	step("check", "datascale", "--load", "huge"),
	masked(memoryFigure, "check", "datascale", "--auto-compact", "--auto-defrag", "--prefix", "/ds/"),
	step("get", "/ds/", "--prefix", "--count-only", "-w", "fields"),
}

var (
	memoryUsedRe = regexp.MustCompile(`memory used : -?\d+\.\d\d MB`)
	barRenderRe  = regexp.MustCompile(`\r?\d+ / \d+ \[[->_]*\] \d+\.\d\d% (\?|\d+) p/s *\n?`)
)

// memoryFigure hides how much the server's memory grew, and progress bar
// renders: etcdctl draws its bar off a terminal too, one render after the
// other without line breaks, where kvctl draws it on a terminal only.
func memoryFigure(s string) string {
	s = barRenderRe.ReplaceAllString(s, "")
	return memoryUsedRe.ReplaceAllString(framework.Normalize(s), "memory used : X MB")
}

// TestSameAsEtcdctl runs the script with etcdctl v3.7.3 against a fresh
// etcd, then with kvctl against another fresh etcd on the same ports and
// name (so the IDs match), and requires the same stdout, stderr and exit
// code from every step after normalising what legitimately differs.
func TestSameAsEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("runs some 400 CLI processes; skipped with -short")
	}
	etcd := framework.RequireBin(t, framework.EtcdBin())
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	clientPort, peerPort := framework.PickPort(t), framework.PickPort(t)
	dead := framework.DeadEndpoint(t)
	// Steps with a dead endpoint: the client waits for a connection until
	// the command's deadline, as etcd's does.
	onDead := func(norm func(string) string, eps string, args ...string) framework.Step {
		timeout := "200ms"
		if strings.Contains(eps, framework.EndpointVar) {
			timeout = "1s" // time enough for the live endpoint on a busy machine
		}
		args = append([]string{"--endpoints", eps, "--command-timeout", timeout}, args...)
		return framework.Step{Args: args, NoEndpoints: true, Normalize: norm}
	}
	steps := append(script,
		onDead(framework.Normalize, dead, "get", "/k/1"),
		onDead(framework.Normalize, dead, "put", "/k/1", "v"),
		onDead(framework.Normalize, dead+","+framework.EndpointVar, "get", "/k/1"),
		onDead(framework.NormalizeStatus, dead, "endpoint", "health", "-w", "table"),
		onDead(framework.NormalizeStatus, dead+","+framework.EndpointVar, "endpoint", "status", "-w", "table"),
		onDead(framework.Normalize, framework.EndpointVar+","+dead, "endpoint", "hashkv", "-w", "json"),
	)
	// A member name beyond ASCII checks the table's width arithmetic.
	const name = "kvd-ünï-日本-🙂⚡️"
	run := func(cli string) []framework.Result {
		m := framework.StartMemberAt(t, etcd, name, clientPort, peerPort)
		defer m.Stop()
		return framework.RunScript(t, cli, m.Endpoint, steps)
	}
	want := run(etcdctl)
	got := run(kvctl)
	for i, st := range steps {
		if got[i] != want[i] {
			t.Errorf("step %d %q (stdin %q) differs\n--- kvctl: exit %d\nstdout:\n%s\nstderr:\n%s\n--- etcdctl: exit %d\nstdout:\n%s\nstderr:\n%s",
				i, st.Args, truncate(st.Stdin), got[i].Code, got[i].Stdout, got[i].Stderr, want[i].Code, want[i].Stdout, want[i].Stderr)
		}
	}
}

func truncate(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%s... (%d bytes)", s[:80], len(s))
	}
	return s
}
