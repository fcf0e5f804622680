package main

import (
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kvd-io/kvd/tests/framework"
)

// sttyRe matches what stty says on stderr when etcdctl asks for a
// password on a stdin that is not a terminal: etcdctl runs stty to turn
// echo off and on, kvctl asks the terminal itself and has nothing to say.
var sttyRe = regexp.MustCompile(`(?m)^stty: .*\n`)

// TestUserRoleAuthSameAsEtcdctl runs the user, role and auth commands with
// etcdctl against a fresh etcd, then with kvctl against a fresh server of
// each kind on the same ports and name (so IDs and revisions match), and
// requires the same output and exit code from every step.
func TestUserRoleAuthSameAsEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("runs some 600 CLI processes; skipped with -short")
	}
	etcd := framework.RequireBin(t, framework.EtcdBin())
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	clientPort, peerPort := framework.PickPort(t), framework.PickPort(t)
	steps := slices.Concat(authRoleSteps, authUserSteps, authEnableSteps)
	run := func(t *testing.T, cli, server string) []framework.Result {
		m := framework.StartMemberAt(t, server, "auth-test", clientPort, peerPort)
		defer m.Stop()
		out := framework.RunScript(t, cli, m.Endpoint, steps)
		for i := range out {
			out[i].Stderr = sttyRe.ReplaceAllString(out[i].Stderr, "")
		}
		return out
	}
	want := run(t, etcdctl, etcd)
	for _, srv := range leaseServers { // the same servers as the lease comparison
		t.Run(srv.name, func(t *testing.T) {
			got := run(t, kvctl, srv.bin(t))
			for i, st := range steps {
				if got[i] != want[i] {
					t.Errorf("step %d %q (stdin %q) differs\n--- kvctl: exit %d\nstdout:\n%q\nstderr:\n%s\n--- etcdctl: exit %d\nstdout:\n%q\nstderr:\n%s",
						i, st.Args, st.Stdin, got[i].Code, got[i].Stdout, got[i].Stderr, want[i].Code, want[i].Stdout, want[i].Stderr)
				}
			}
		})
	}
}

// TestPermRange covers how role grant-permission and revoke-permission
// turn their arguments and flags into a range, without a server.
func TestPermRange(t *testing.T) {
	for _, tc := range []struct {
		args            []string
		prefix, fromKey bool
		key, end, err   string
	}{
		{args: []string{"/k"}, key: "/k"},
		{args: []string{"/k", "/m"}, key: "/k", end: "/m"},
		{args: []string{"/k"}, prefix: true, key: "/k", end: "/l"},
		{args: []string{"/k"}, fromKey: true, key: "/k", end: "\x00"},
		{args: []string{"\xff"}, prefix: true, key: "\xff", end: "\x00"},
		{args: []string{""}, key: "\x00"},
		{args: []string{"", "ignored"}, prefix: true, key: "\x00", end: "\x00"},
		{args: []string{""}, fromKey: true, key: "\x00", end: "\x00"},
		{args: []string{""}, prefix: true, fromKey: true, err: "mutually exclusive"},
		{args: []string{"/k"}, prefix: true, fromKey: true, err: "mutually exclusive"},
		{args: []string{"/k", "/m"}, prefix: true, fromKey: true, err: "unexpected endkey argument with --prefix flag"},
		{args: []string{"/k", "/m"}, fromKey: true, err: "unexpected endkey argument with --from-key flag"},
	} {
		f := permFlags{prefix: tc.prefix, fromKey: tc.fromKey}
		key, end, err := f.permRange(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q %+v: got error %v, want %q", tc.args, f, err, tc.err)
			}
			continue
		}
		if err != nil || key != tc.key || end != tc.end {
			t.Errorf("%q %+v: got %q %q %v, want %q %q", tc.args, f, key, end, err, tc.key, tc.end)
		}
	}
}

// TestReadSecret: a prompt reads one line and leaves the rest of stdin
// for the next one, and always ends the prompt's line.
func TestReadSecret(t *testing.T) {
	in := strings.NewReader(" first \r\nsecond\nrest")
	var out strings.Builder
	for _, want := range []string{"first", "second", "rest", ""} {
		got, err := readSecret(in, &out, "> ")
		if err != nil || got != want {
			t.Fatalf("got %q %v, want %q", got, err, want)
		}
	}
	if out.String() != "> \n> \n> \n> \n" {
		t.Fatalf("prompts: %q", out.String())
	}
	if _, err := readSecret(failingReader{}, io.Discard, ""); err == nil || !strings.Contains(err.Error(), "failed during password entry") {
		t.Fatalf("a failing stdin: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrClosedPipe }
