package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
)

// concRun is one CLI's run of a lock or election scenario against a
// fresh server: what each command printed, under a name, with the
// session lease IDs (which the server picks) replaced by <s1>, <s2>...
// in order of appearance.
type concRun struct {
	t        *testing.T
	bin, ep  string
	sessions []int64
	names    []string
	results  []framework.Result
}

var (
	// A lock's or candidate's key ends in its session's lease ID, in
	// unpadded hex.
	sessionKeyRe = regexp.MustCompile(`/([0-9a-f]{8,16})\b`)
	jsonKeyRe    = regexp.MustCompile(`"key":"([A-Za-z0-9+/=]*)"`)
)

// learn notes the session IDs that s shows in keys, plain or base64.
func (c *concRun) learn(s string) {
	found := sessionKeyRe.FindAllStringSubmatch(s, -1)
	for _, m := range jsonKeyRe.FindAllStringSubmatch(s, -1) {
		if b, err := base64.StdEncoding.DecodeString(m[1]); err == nil {
			found = append(found, sessionKeyRe.FindAllStringSubmatch(string(b), -1)...)
		}
	}
	for _, m := range found {
		id, _ := strconv.ParseInt(m[1], 16, 64)
		known := false
		for _, s := range c.sessions {
			known = known || s == id
		}
		if !known {
			c.sessions = append(c.sessions, id)
		}
	}
}

func (c *concRun) mask(s string) string {
	s = jsonKeyRe.ReplaceAllStringFunc(s, func(m string) string {
		b, err := base64.StdEncoding.DecodeString(jsonKeyRe.FindStringSubmatch(m)[1])
		if err != nil {
			return m
		}
		return `"key":"` + c.mask(string(b)) + `"`
	})
	for i, id := range c.sessions {
		name := fmt.Sprintf("<s%d>", i+1)
		for _, form := range []string{strconv.FormatInt(id, 10), fmt.Sprintf("%016x", id), fmt.Sprintf("%x", id)} {
			s = strings.ReplaceAll(s, form, name)
		}
	}
	return withoutClientLog(s)
}

func (c *concRun) record(name string, r framework.Result) {
	c.learn(r.Stdout + r.Stderr)
	c.names = append(c.names, name)
	c.results = append(c.results, framework.Result{Stdout: c.mask(r.Stdout), Stderr: c.mask(r.Stderr), Code: r.Code})
}

// run runs a command that ends by itself and records its result.
func (c *concRun) run(args ...string) {
	c.t.Helper()
	c.record(fmt.Sprint(args), framework.Run(c.t, framework.Invocation{Bin: c.bin, Endpoints: c.ep, Args: args}))
}

// start runs a command that waits (for a lock, a leadership or a signal).
func (c *concRun) start(args ...string) *cliRun { return startCLI(c.t, c.bin, c.ep, nil, args...) }

// until waits, at most 20s, for r's output to contain want.
func (c *concRun) until(r *cliRun, want string) {
	c.t.Helper()
	r.waitFor(func(stdout, stderr string) bool { return strings.Contains(stdout+stderr, want) })
	if stdout, stderr := r.output(); !strings.Contains(stdout+stderr, want) {
		c.t.Fatalf("%s %q never printed %q: stdout %q stderr %q", c.bin, r.cmd.Args, want, stdout, stderr)
	}
}

// waitKeys waits until n keys exist under prefix: a contender has queued.
func (c *concRun) waitKeys(prefix string, n int) {
	c.t.Helper()
	want := fmt.Sprintf(`"Count" : %d`, n)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r := framework.Run(c.t, framework.Invocation{Bin: c.bin, Endpoints: c.ep,
			Args: []string{"get", prefix, "--prefix", "--count-only", "-w", "fields"}})
		if strings.Contains(r.Stdout, want) {
			return
		}
	}
	c.t.Fatalf("never %d keys under %s", n, prefix)
}

// stillWaiting records whether r has printed nothing and not exited,
// after a second to show otherwise.
func (c *concRun) stillWaiting(name string, r *cliRun) {
	time.Sleep(time.Second)
	stdout, stderr := r.output()
	c.record(name, framework.Result{Stdout: fmt.Sprintf("waiting: %v", !r.exited() && stdout+stderr == "")})
}

// interrupt sends SIGINT to r and records how it ended.
func (c *concRun) interrupt(name string, r *cliRun) {
	c.t.Helper()
	if err := r.cmd.Process.Signal(os.Interrupt); err != nil {
		c.t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		c.t.Errorf("%s %q did not end 20s after SIGINT", c.bin, r.cmd.Args)
	}
	c.record(name, r.finish(false, func(s string) string { return s }))
}

// concScenarios drive lock and elect; each runs on a fresh server.
var concScenarios = []struct {
	name string
	run  func(*concRun)
}{
	{"lock arguments and commands", lockCommands},
	{"lock contention", lockContention},
	{"elect", electLeaders},
}

// lockCommands covers lock with a command (its environment, output and
// exit code) and the argument errors of lock and elect.
func lockCommands(c *concRun) {
	c.run("lock")
	c.run("lock", "mylock", "--", "sh", "-c", `echo "key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV"; echo oops >&2; exit 3`)
	c.run("lock", "mylock", "--ttl", "5", "--", "sh", "-c", "env | grep ^ETCD_LOCK_ | sort")
	c.run("lock", "mylock", "--", "nosuchcommand")
	c.run("lock", "mylock", "--", "sh", "-c", "kill -9 $$")
	c.run("lock", "mylock", "-w", "json", "--", "true")
	c.run("get", "mylock", "--prefix") // every run above unlocked
	c.run("lock", "tablelock", "-w", "table")
	// The format is refused after the lock was taken, and the lock stays
	// until its session's lease expires, as etcdctl leaves it.
	c.run("get", "tablelock", "--prefix", "--keys-only")
	c.run("elect")
	c.run("elect", "e")
	c.run("elect", "e", "p", "extra")
	c.run("elect", "-l", "e", "p")
	c.run("elect", "-l", "e", "-w", "bogus")
}

// lockContention: a second lock waits for the first to end, and one
// interrupted while waiting gives up with "context canceled".
func lockContention(c *concRun) {
	first := c.start("lock", "mylock")
	c.until(first, "\n\n") // the key, then its empty value
	second := c.start("lock", "mylock", "--", "sh", "-c", `echo "second holds $ETCD_LOCK_KEY at $ETCD_LOCK_REV"`)
	c.waitKeys("mylock/", 2)
	third := c.start("lock", "mylock", "-w", "fields")
	c.waitKeys("mylock/", 3)
	c.stillWaiting("second while first holds", second)
	c.interrupt("third, interrupted while waiting", third)
	c.interrupt("first, interrupted while holding", first)
	c.until(second, "second holds")
	c.record("second", second.finish(true, func(s string) string { return s }))
	held := c.start("lock", "mylock", "--ttl", "3", "-w", "fields")
	c.until(held, `"Count" : 1`)
	c.interrupt("fields, interrupted while holding", held)
	c.run("get", "mylock", "--prefix", "--count-only", "-w", "fields")
}

// electLeaders: observers see each leader; a second candidate leads
// once the first resigns.
func electLeaders(c *concRun) {
	observer := c.start("elect", "-l", "myelection")
	p1 := c.start("elect", "myelection", "p1")
	c.until(p1, "p1\n")
	c.until(observer, "p1\n")
	p2 := c.start("elect", "myelection", "p2")
	c.waitKeys("myelection/", 2)
	c.stillWaiting("p2 while p1 leads", p2)
	fields := c.start("elect", "-l", "myelection", "-w", "fields")
	c.until(fields, `"Value" : "p1"`)
	c.interrupt("p1", p1)
	c.until(p2, "p2\n")
	c.until(observer, "p2\n")
	c.until(fields, `"Value" : "p2"`)
	c.interrupt("p2", p2)
	c.run("get", "myelection", "--prefix")
	c.interrupt("observer", observer)
	c.interrupt("fields observer", fields)
}

// TestLockElectSameAsEtcdctl runs each scenario with etcdctl against a
// fresh etcd and with kvctl against a fresh server of each kind, on the
// same ports and name, and compares every command's output and exit code.
func TestLockElectSameAsEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and waits on locks; skipped with -short")
	}
	etcd := framework.RequireBin(t, framework.EtcdBin())
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	clientPort, peerPort := framework.PickPort(t), framework.PickPort(t)
	run := func(t *testing.T, cli, server string, scenario func(*concRun)) *concRun {
		m := framework.StartMemberAt(t, server, "lock-test", clientPort, peerPort)
		defer m.Stop()
		c := &concRun{t: t, bin: cli, ep: m.Endpoint}
		scenario(c)
		return c
	}
	want := make([]*concRun, len(concScenarios))
	for i, sc := range concScenarios {
		want[i] = run(t, etcdctl, etcd, sc.run)
	}
	for _, srv := range leaseServers {
		t.Run(srv.name, func(t *testing.T) {
			for j, sc := range concScenarios {
				want, got := want[j], run(t, kvctl, srv.bin(t), sc.run)
				if len(got.results) != len(want.results) {
					t.Fatalf("%s: %d results, etcdctl's run has %d", sc.name, len(got.results), len(want.results))
				}
				for i, name := range want.names {
					if got.results[i] != want.results[i] {
						t.Errorf("%s: %s differs\n--- kvctl: exit %d\nstdout:\n%s\nstderr:\n%s\n--- etcdctl: exit %d\nstdout:\n%s\nstderr:\n%s",
							sc.name, name, got.results[i].Code, got.results[i].Stdout, got.results[i].Stderr,
							want.results[i].Code, want.results[i].Stdout, want.results[i].Stderr)
					}
				}
			}
		})
	}
}
