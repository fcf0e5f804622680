package framework

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Process is a command-line tool running in the background, for commands
// that wait (lock, elect, watch) while the test does other things. Its
// output is collected as it comes. It is killed when the test ends, or
// at the Invocation's Timeout when one is set, so none outlives a test.
type Process struct {
	cmd  *exec.Cmd
	out  lockedBuffer
	err  lockedBuffer
	done chan struct{} // closed once the process has exited
}

// StartProcess starts inv without waiting for it. Stdin and Env are used
// as Run uses them.
func StartProcess(t testing.TB, inv Invocation) *Process {
	t.Helper()
	var args []string
	if inv.Endpoints != "" {
		args = append(args, "--endpoints="+inv.Endpoints)
	}
	p := &Process{cmd: exec.Command(inv.Bin, append(args, inv.Args...)...), done: make(chan struct{})}
	p.cmd.Env = append(CleanEnv(), inv.Env...)
	p.cmd.Stdin = strings.NewReader(inv.Stdin)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	// A child that outlives the process (a lock's command) may hold its
	// output open; do not wait on it for long once the process is gone.
	p.cmd.WaitDelay = time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", inv.Bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	if inv.Timeout > 0 {
		timer := time.AfterFunc(inv.Timeout, p.Kill)
		t.Cleanup(func() { timer.Stop() })
	}
	t.Cleanup(p.Kill)
	return p
}

// Output is what the process has printed so far.
func (p *Process) Output() (stdout, stderr string) { return p.out.String(), p.err.String() }

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig unless the process has exited.
func (p *Process) Signal(sig os.Signal) {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL, as a crash would, and waits for the process to end.
func (p *Process) Kill() {
	p.Signal(os.Kill)
	<-p.done
}

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited says whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to d for the process to end and returns its exit code
// (-1 when a signal ended it); ok is false when it still runs.
func (p *Process) Wait(d time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), true
	case <-time.After(d):
		return 0, false
	}
}

// WaitOutput polls, for at most d, until the standard output contains
// want, and says whether it does; it gives up early if the process ends
// without printing it.
func (p *Process) WaitOutput(want string, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		exited := p.Exited() // before reading, so nothing printed at exit is missed
		if stdout, _ := p.Output(); strings.Contains(stdout, want) {
			return true
		}
		if exited || time.Now().After(deadline) {
			return false
		}
	}
}

// String names the command line, for failure messages.
func (p *Process) String() string {
	stdout, stderr := p.Output()
	return strings.Join(p.cmd.Args, " ") + "\nstdout:\n" + stdout + "stderr:\n" + stderr
}
