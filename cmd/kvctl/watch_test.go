package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
)

// watchCase is one watch command line. A watch runs until killed, so
// each run is stopped once its output is complete: for etcdctl, when
// the output has not changed for a while; for kvctl, when it is as long
// as etcdctl's (or has stopped changing). Interactive runs end by
// closing their stdin, which ends the command with its own exit code.
// Lines in later are typed a second after stdin, once the watches that
// stdin started exist: etcdctl answers a progress line sent while its
// watch is still being created only when the server's replies happen to
// come in the right order.
type watchCase struct {
	args  []string
	env   []string
	stdin string
	later string
	norm  func(string) string
}

func wcase(args ...string) watchCase { return watchCase{args: args} }

// cliRun is a CLI process whose output is collected as it comes.
type cliRun struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	mu             sync.Mutex
	stdout, stderr bytes.Buffer
	done           chan struct{}
}

type syncWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func startCLI(t *testing.T, bin, ep string, env []string, args ...string) *cliRun {
	t.Helper()
	r := &cliRun{done: make(chan struct{})}
	r.cmd = exec.Command(bin, append([]string{"--endpoints=" + ep}, args...)...)
	r.cmd.Env = append(framework.CleanEnv(), env...)
	r.cmd.Stdout = syncWriter{&r.mu, &r.stdout}
	r.cmd.Stderr = syncWriter{&r.mu, &r.stderr}
	in, err := r.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.stdin = in
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { r.kill() })
	return r
}

func (r *cliRun) output() (string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stdout.String(), r.stderr.String()
}

func (r *cliRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *cliRun) kill() {
	if !r.exited() {
		_ = r.cmd.Process.Kill()
	}
	<-r.done
}

// waitFor polls until done says the output is complete or the process
// exits, for at most 20s.
func (r *cliRun) waitFor(done func(stdout, stderr string) bool) {
	deadline := time.Now().Add(20 * time.Second)
	for !r.exited() && time.Now().Before(deadline) {
		if done(r.output()) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quiet is a waitFor condition: some time has passed and the output has
// not changed for a while.
func quiet() func(string, string) bool {
	start, last, changed := time.Now(), "", time.Now()
	return func(stdout, stderr string) bool {
		if cur := stdout + "\x00" + stderr; cur != last {
			last, changed = cur, time.Now()
		}
		return time.Since(start) > 1500*time.Millisecond && time.Since(changed) > 600*time.Millisecond
	}
}

// finish ends a run: interactive ones by closing stdin, others by
// killing them, and returns what they printed. A killed run's exit code
// is -1.
func (r *cliRun) finish(interactive bool, norm func(string) string) framework.Result {
	if interactive {
		r.stdin.Close()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
		}
	}
	r.kill()
	stdout, stderr := r.output()
	return framework.Result{Stdout: norm(stdout), Stderr: norm(stderr), Code: r.cmd.ProcessState.ExitCode()}
}

func runWatchCase(t *testing.T, bin, ep string, c watchCase, want *framework.Result) framework.Result {
	t.Helper()
	r := startCLI(t, bin, ep, c.env, c.args...)
	interactive := c.stdin != ""
	if interactive {
		if _, err := io.WriteString(r.stdin, c.stdin); err != nil {
			t.Fatal(err)
		}
		if c.later != "" {
			time.Sleep(time.Second)
			if _, err := io.WriteString(r.stdin, c.later); err != nil {
				t.Fatal(err)
			}
		}
	}
	done := quiet()
	if want != nil {
		q := quiet()
		done = func(stdout, stderr string) bool {
			n := want.Stdout != "" || want.Stderr != ""
			full := len(stdout) >= len(want.Stdout) && len(stderr) >= len(want.Stderr)
			return (n && full) || q(stdout, stderr)
		}
	}
	r.waitFor(done)
	if want != nil {
		time.Sleep(200 * time.Millisecond) // anything beyond etcdctl's output shows
	}
	norm := c.norm
	if norm == nil {
		norm = framework.Normalize
	}
	return r.finish(interactive, norm)
}

// TestWatchSameAsEtcdctl runs watch command lines with etcdctl v3.7.3 and
// with kvctl against one etcd, and requires the same output and exit
// code. Replays (--rev) of a fixed history make the output independent
// of timing; the live cases start both CLIs' watches together and write
// only once etcd counts both watchers.
func TestWatchSameAsEtcdctl(t *testing.T) {
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	m := framework.StartEtcd(t)
	ep := m.Endpoint
	for _, args := range [][]string{
		{"put", "/w/a", "1"}, {"put", "/w/a", "2"}, {"del", "/w/a"}, {"put", "/w/b", "va l"},
		{"put", "/w/c", "line1\nline2"}, {"put", "/x", "outside"}, {"put", "/w/a", "3"},
	} {
		if r := framework.Run(t, framework.Invocation{Bin: etcdctl, Endpoints: ep, Args: args}); r.Code != 0 {
			t.Fatalf("etcdctl %q: %s", args, r.Stderr)
		}
	}
	const show = `echo "rev=$ETCD_WATCH_REVISION type=$ETCD_WATCH_EVENT_TYPE key=$ETCD_WATCH_KEY value=$ETCD_WATCH_VALUE"`
	cases := []watchCase{
		wcase("watch", "/w/a", "--rev", "1"),
		wcase("watch", "/w/", "--prefix", "--rev", "1", "--prev-kv"),
		wcase("watch", "/w/a", "/w/c", "--rev", "1"),
		wcase("watch", "/w/", "--prefix", "--rev", "3", "-w", "json"),
		wcase("watch", "/w/", "--prefix", "--rev", "1", "--prev-kv", "-w", "json", "--hex"),
		wcase("watch", "/w/", "--prefix", "--rev", "1", "--prev-kv", "-w", "fields"),
		wcase("watch", "/w/", "--prefix", "--rev", "1", "-w", "fields", "--hex"),
		wcase("watch", "/w/", "--prefix", "--rev", "1", "--prev-kv", "-w", "protobuf"),
		wcase("watch", "/w/", "--prefix", "--rev", "1", "--hex"),
		wcase("watch", "/w/", "--prefix", "--rev", "1", "-w", "table"),
		wcase("watch", "/w/", "--prefix", "--rev", "1", "--", "sh", "-c", show),
		wcase("watch", "--rev", "2", "/w/a", "--", "sh", "-c", show),
		wcase("watch", "/w/a", "--rev", "1", "--", "false"),
		{args: []string{"watch", "--rev", "1"}, env: []string{"ETCDCTL_WATCH_KEY=/w/", "ETCDCTL_WATCH_RANGE_END=/w/c"}},
		{args: []string{"watch", "--rev", "1", "--", "sh", "-c", show}, env: []string{"ETCDCTL_WATCH_KEY=/w/b"}},
		{args: []string{"watch", "/w/a"}, env: []string{"ETCDCTL_WATCH_KEY=/w/a"}},
		{args: []string{"watch", "/w/a", "--", "echo"}, env: []string{"ETCDCTL_WATCH_KEY=/w/a"}},
		{args: []string{"watch"}, env: []string{"ETCDCTL_WATCH_RANGE_END=/w/c"}},
		wcase("watch"),
		wcase("watch", "--rev", "1"),
		wcase("watch", "/w/a", "/w/c", "--prefix"),
		wcase("watch", "/w/a", "--"),
		wcase("watch", "--", "echo", "hi"),
		{args: []string{"watch", "/w/a", "--rev", "x"}, norm: withoutUsage},
		{args: []string{"watch", "/w/a", "--bogus"}, norm: withoutUsage},
		// Interactive, with one watch per run: etcdctl prints each watch
		// from its own goroutine, so two watches' output interleaves freely.
		{args: []string{"watch", "-i"}, stdin: "watch /w/a --rev 1\n\nbogus\nwatch\nwatch x y --prefix\n"},
		{args: []string{"watch", "-i", "--prev-kv"}, stdin: "watch /w/b --rev 1 --prev-kv\n"},
		{args: []string{"watch", "-i", "-w", "json"}, stdin: "watch /w/c --rev 1 -- sh -c '" + strings.ReplaceAll(show, "'", "") + "'\n"},
		{args: []string{"watch", "-i"}, stdin: "watch /none\n", later: "progress\n"},
		{args: []string{"watch", "-i"}, stdin: "watch /w/a --rev 1 --bogus\n"},
		{args: []string{"watch", "-i"}, stdin: "watch /w/a --\n"},
		{args: []string{"watch", "-i"}, stdin: "watch --rev 1\n"},
		{args: []string{"watch", "-i"}, stdin: "watch \"/w/a\\q\"\n"},
		{args: []string{"watch", "-i"}, stdin: "watch /w/a --rev 1 -- false\n"},
		{args: []string{"watch", "-i"}, env: []string{"ETCDCTL_WATCH_KEY=/w/b"}, stdin: "watch --rev 1\n"},
	}
	for _, c := range cases {
		want := runWatchCase(t, etcdctl, ep, c, nil)
		got := runWatchCase(t, kvctl, ep, c, &want)
		compareRuns(t, fmt.Sprintf("%q env %q stdin %q", c.args, c.env, c.stdin), got, want)
	}

	t.Run("Live", func(t *testing.T) { testWatchLive(t, etcdctl, kvctl, ep) })

	// A start revision that was compacted away cancels the watch.
	rev := "0"
	r := framework.Run(t, framework.Invocation{Bin: etcdctl, Endpoints: ep, Args: []string{"put", "/w/z", "z", "-w", "fields"}})
	for _, l := range strings.Split(r.Stdout, "\n") {
		if v, ok := strings.CutPrefix(l, `"Revision" : `); ok {
			rev = v
		}
	}
	framework.Run(t, framework.Invocation{Bin: etcdctl, Endpoints: ep, Args: []string{"compact", rev}})
	for _, c := range []watchCase{
		wcase("watch", "/w/a", "--rev", "2"),
		{args: []string{"watch", "-i"}, stdin: "watch /w/a --rev 2\n"},
	} {
		want := runWatchCase(t, etcdctl, ep, c, nil)
		got := runWatchCase(t, kvctl, ep, c, &want)
		compareRuns(t, fmt.Sprintf("%q stdin %q after compaction", c.args, c.stdin), got, want)
	}
}

func compareRuns(t *testing.T, what string, got, want framework.Result) {
	t.Helper()
	if got != want {
		t.Errorf("%s differs\n--- kvctl: exit %d\nstdout:\n%s\nstderr:\n%s\n--- etcdctl: exit %d\nstdout:\n%s\nstderr:\n%s",
			what, got.Code, got.Stdout, got.Stderr, want.Code, want.Stdout, want.Stderr)
	}
}

// watchers reads etcd's count of watchers from its metrics.
func watchers(t *testing.T, ep string) string {
	resp, err := http.Get("http://" + ep + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "etcd_debugging_mvcc_watcher_total "); ok {
			return v
		}
	}
	return ""
}

// testWatchLive starts the same watch with both CLIs, waits until etcd
// has both watchers, writes, and compares what each printed.
func testWatchLive(t *testing.T, etcdctl, kvctl, ep string) {
	for _, tc := range []struct {
		args  []string
		stdin string
	}{
		{args: []string{"watch", "/live/", "--prefix", "--prev-kv", "-w", "json"}},
		{args: []string{"watch", "/live/", "--prefix", "-w", "fields"}},
		{args: []string{"watch", "-i", "--prev-kv"}, stdin: "watch /live/ --prefix\n"},
	} {
		base := watchers(t, ep)
		runs := []*cliRun{startCLI(t, etcdctl, ep, nil, tc.args...), startCLI(t, kvctl, ep, nil, tc.args...)}
		want := 2
		if tc.stdin != "" {
			want = 2 * strings.Count(tc.stdin, "\n")
			for _, r := range runs {
				_, _ = io.WriteString(r.stdin, tc.stdin)
			}
		}
		deadline := time.Now().Add(20 * time.Second)
		for watchers(t, ep) != fmt.Sprint(atoi(base)+want) {
			if time.Now().After(deadline) {
				t.Fatalf("%q: etcd never counted %d more watchers than %s", tc.args, want, base)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, args := range [][]string{{"put", "/live/a", "1"}, {"put", "/live/b", "2"}, {"put", "/live/a", "3"}, {"del", "/live/", "--prefix"}} {
			framework.Run(t, framework.Invocation{Bin: etcdctl, Endpoints: ep, Args: args})
		}
		runs[0].waitFor(quiet())
		wantOut, _ := runs[0].output()
		runs[1].waitFor(func(stdout, _ string) bool { return len(stdout) >= len(wantOut) })
		time.Sleep(200 * time.Millisecond)
		want0 := runs[0].finish(tc.stdin != "", framework.Normalize)
		got := runs[1].finish(tc.stdin != "", framework.Normalize)
		compareRuns(t, fmt.Sprintf("live %q stdin %q", tc.args, tc.stdin), got, want0)
		if !strings.Contains(want0.Stdout, "/live/") && !strings.Contains(want0.Stdout, "L2xpdmUv") {
			t.Errorf("live %q: etcdctl printed no events:\n%s", tc.args, want0.Stdout)
		}
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}
