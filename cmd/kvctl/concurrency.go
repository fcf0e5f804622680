package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/pkg/client/concurrency"
)

// lock and elect hold what they took (a lock, a leadership) until
// SIGINT or SIGTERM, then give it back and exit 0. Their session's lease
// is left to expire, as etcdctl leaves it: it is not revoked on the way
// out, and a command that fails after taking the lock leaves the lock to
// the lease's expiry.

// onInterrupt calls cancel on the first SIGINT or SIGTERM and then
// closes the returned channel. From then on those signals no longer end
// the process: the command ends itself, in order.
func onInterrupt(cancel context.CancelFunc) <-chan struct{} {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		<-sigc
		cancel()
		close(done)
	}()
	return done
}

func newLockCommand(g *globals) *cobra.Command {
	var ttl int
	cmd := &cobra.Command{
		Use:   "lock <lockname> [exec-command arg1 arg2 ...]",
		Short: "Takes a named lock and holds it until interrupted, or while a command runs",
		Long: `Waits for the lock <lockname>, then prints the key that holds it and keeps
it until interrupted (SIGINT or SIGTERM). With a command, the command runs
while the lock is held, with ETCD_LOCK_KEY and ETCD_LOCK_REV in its
environment, and its exit code is kvctl's. The lock lives in a session
whose lease --ttl seconds long is kept alive meanwhile: if kvctl dies,
the lock is free again once that lease expires.`,
		GroupID: groupConcurrency,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fail(exitBadArgs, "lock takes a lock name argument and an optional command to execute")
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				return lockUntilDone(g, c, p, ttl, args[0], args[1:])
			})
		},
	}
	cmd.Flags().IntVar(&ttl, "ttl", 10, "TTL in seconds of the session's lease")
	return cmd
}

func lockUntilDone(g *globals, c *client.Client, p printer, ttl int, name string, command []string) error {
	s, err := concurrency.NewSession(c, concurrency.WithTTL(ttl))
	if err != nil {
		return failWith(exitError, err)
	}
	m := concurrency.NewMutex(s, name)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupted := onInterrupt(cancel)
	if err := m.Lock(ctx); err != nil {
		return failWith(exitError, err)
	}
	if len(command) > 0 {
		return runLocked(g, m, command)
	}
	resp, err := c.Get(ctx, m.Key())
	if err != nil {
		return failWith(exitError, err)
	}
	if len(resp.Kvs) == 0 {
		return fail(exitError, "lock lost on init")
	}
	if err := p.Get(resp); err != nil {
		return err
	}
	select {
	case <-interrupted:
		if err := m.Unlock(context.Background()); err != nil {
			return failWith(exitError, err)
		}
		return nil
	case <-s.Done():
		return fail(exitError, "session expired")
	}
}

// runLocked runs the command while m is held and unlocks afterwards. A
// command that exits non-zero makes kvctl exit with its code (255 if a
// signal ended it), printing "Error: exit status N" as etcdctl does.
func runLocked(g *globals, m *concurrency.Mutex, command []string) error {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = append([]string{"ETCD_LOCK_KEY=" + m.Key(), fmt.Sprintf("ETCD_LOCK_REV=%d", m.Header().GetRevision())}, os.Environ()...)
	cmd.Stdout, cmd.Stderr = g.stdout, g.stderr
	runErr := cmd.Run()
	unlockErr := m.Unlock(context.Background())
	var exit *exec.ExitError
	switch {
	case errors.As(runErr, &exit):
		code := exitError
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok {
			code = ws.ExitStatus()
		}
		return failWith(code, runErr)
	case runErr != nil:
		return failWith(exitError, runErr)
	case unlockErr != nil:
		return failWith(exitError, unlockErr)
	}
	return nil
}

func newElectCommand(g *globals) *cobra.Command {
	var listen bool
	cmd := &cobra.Command{
		Use:   "elect <election-name> [proposal]",
		Short: "Campaigns in a leader election, or with -l follows who leads",
		Long: `With a proposal, campaigns to lead the election <election-name>: once
elected, prints the leader's key and proposal and leads until interrupted
(SIGINT or SIGTERM), then resigns. With -l and no proposal, prints the
current leader's key and proposal and again at every change of leader,
until interrupted.`,
		GroupID: groupConcurrency,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 && len(args) != 2 {
				return fail(exitBadArgs, "elect takes one election name argument and an optional proposal argument")
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				var err error
				switch {
				case len(args) == 1 && !listen:
					return fail(exitBadArgs, "no proposal argument but -l not set")
				case len(args) == 2 && listen:
					return fail(exitBadArgs, "proposal given but -l is set")
				case listen:
					err = observe(c, p, args[0])
				default:
					err = campaign(c, p, args[0], args[1])
				}
				var ee *exitErr
				if err != nil && !errors.As(err, &ee) {
					return failWith(exitError, err)
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&listen, "listen", "l", false, "follow the election's leader instead of campaigning")
	return cmd
}

// observe prints the leader, and each new one, until interrupted.
func observe(c *client.Client, p printer, name string) error {
	s, err := concurrency.NewSession(c)
	if err != nil {
		return err
	}
	e := concurrency.NewElection(s, name)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	onInterrupt(cancel)
	for resp := range e.Observe(ctx) {
		if err := p.Get(resp); err != nil {
			return err
		}
	}
	if ctx.Err() == nil {
		return errors.New("elect: observer lost")
	}
	return nil
}

// campaign waits to be elected, prints the leader key, and leads until
// interrupted, then resigns.
func campaign(c *client.Client, p printer, name, proposal string) error {
	s, err := concurrency.NewSession(c)
	if err != nil {
		return err
	}
	e := concurrency.NewElection(s, name)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupted := onInterrupt(cancel)
	if err := e.Campaign(ctx, proposal); err != nil {
		return err
	}
	resp, err := c.Get(ctx, e.Key())
	if err != nil {
		return err
	}
	if err := p.Get(resp); err != nil {
		return err
	}
	select {
	case <-interrupted:
	case <-s.Done():
		return errors.New("elect: session expired")
	}
	return e.Resign(context.Background())
}
