package framework

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Invocation is one run of a command-line tool (kvctl or etcdctl).
type Invocation struct {
	Bin string
	// Endpoints, when set, is passed as --endpoints before Args.
	Endpoints string
	Args      []string
	Stdin     string
	// Env is added to an environment without any ETCDCTL_* or KVCTL_*
	// variable, so an operator's settings cannot change the outcome.
	Env []string
	// Timeout kills the process; zero means 30s.
	Timeout time.Duration
	// RunsOn marks a command that does not end by itself (watch): it is
	// stopped at Timeout, and that is not a failure.
	RunsOn bool
}

// Result is what a run printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs inv and returns its output; a run that cannot start or does
// not finish in time fails the test.
func Run(t testing.TB, inv Invocation) Result {
	t.Helper()
	var args []string
	if inv.Endpoints != "" {
		args = append(args, "--endpoints="+inv.Endpoints)
	}
	args = append(args, inv.Args...)
	cmd := exec.Command(inv.Bin, args...)
	cmd.Env = append(CleanEnv(), inv.Env...)
	cmd.Stdin = strings.NewReader(inv.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", inv.Bin, err)
	}
	timeout := inv.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		if !inv.RunsOn {
			t.Fatalf("%s %q did not finish in %v", inv.Bin, inv.Args, timeout)
		}
		return Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: -1}
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s %q: %v", inv.Bin, inv.Args, err)
	}
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}

// RunCLI runs bin with args against endpoints ("" for none) and no stdin.
func RunCLI(t testing.TB, bin, endpoints string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	r := Run(t, Invocation{Bin: bin, Endpoints: endpoints, Args: args})
	return r.Stdout, r.Stderr, r.Code
}

// CleanEnv is the test process's environment without ETCDCTL_* and
// KVCTL_* variables.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCDCTL_") && !strings.HasPrefix(kv, "KVCTL_") {
			env = append(env, kv)
		}
	}
	return env
}

var (
	// etcd's client library logs as JSON lines on stderr (retries, env
	// warnings); they carry timestamps and pointers, not the CLI's output.
	logLineRe = regexp.MustCompile(`(?m)^\{"level":.*\n?`)
	// Go durations as time.Duration prints them: 1.5s, 13.1ms, 2m3s.
	durationRe = regexp.MustCompile(`\b(\d+h)?(\d+m)?\d+(\.\d+)?(ns|µs|us|ms|s)\b`)
	// The version command names the tool and its release.
	cliVersionRe = regexp.MustCompile(`(?m)^(etcdctl|kvctl) version: \S+$`)
	cliNameRe    = regexp.MustCompile(`\b(etcdctl|kvctl)\b`)
)

// Normalize hides what legitimately differs between kvctl and etcdctl,
// or between two runs, in otherwise identical output: client log lines,
// durations, the tool's name and release.
func Normalize(s string) string {
	s = logLineRe.ReplaceAllString(s, "")
	s = cliVersionRe.ReplaceAllString(s, "CLI version: X")
	s = cliNameRe.ReplaceAllString(s, "CLI")
	return durationRe.ReplaceAllString(s, "DURATION")
}

var (
	// Status output holds server versions, sizes and raft indexes, which
	// differ between servers and between runs.
	statusFieldRe = regexp.MustCompile(`3\.\d+\.\d+|\d+(\.\d+)? [kMG]?B|\b\d+\b`)
	// Table padding follows the width of what was masked; squeeze it.
	paddingRe = regexp.MustCompile(`[ ─]+`)
)

// NormalizeStatus is Normalize plus masking of every number, size and
// version, and of table padding: for endpoint status and health, whose
// figures change from run to run.
func NormalizeStatus(s string) string {
	s = statusFieldRe.ReplaceAllString(Normalize(s), "N")
	return paddingRe.ReplaceAllString(s, " ")
}

// Step is one command line of a script that several CLIs run in turn,
// each against a server in the same state, so their outputs can be
// compared.
type Step struct {
	Args  []string
	Stdin string
	// Env is added to the clean environment.
	Env []string
	// NoEndpoints leaves --endpoints out, for steps that name the server
	// through the environment.
	NoEndpoints bool
	// Normalize, when set, replaces Normalize for this step's output.
	Normalize func(string) string
}

// EndpointVar in a step's Args or Env is replaced by the server's endpoint.
const EndpointVar = "{{endpoint}}"

// RunScript runs steps with bin against endpoint in order and returns
// each step's normalized result.
func RunScript(t testing.TB, bin, endpoint string, steps []Step) []Result {
	t.Helper()
	out := make([]Result, len(steps))
	for i, st := range steps {
		inv := Invocation{Bin: bin, Stdin: st.Stdin}
		if !st.NoEndpoints {
			inv.Endpoints = endpoint
		}
		for _, a := range st.Args {
			inv.Args = append(inv.Args, strings.ReplaceAll(a, EndpointVar, endpoint))
		}
		for _, e := range st.Env {
			inv.Env = append(inv.Env, strings.ReplaceAll(e, EndpointVar, endpoint))
		}
		norm := st.Normalize
		if norm == nil {
			norm = Normalize
		}
		r := Run(t, inv)
		out[i] = Result{Stdout: norm(r.Stdout), Stderr: norm(r.Stderr), Code: r.Code}
	}
	return out
}
