// Command kvctl is kvd's command-line client. It takes etcdctl v3.7's
// commands, flags, environment variables (ETCDCTL_* and KVCTL_*), output
// formats and exit codes, so scripts written for one work with the other,
// against kvd or etcd alike.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes, as etcdctl's.
const (
	exitError         = 1
	exitBadConnection = 2
	exitInvalidInput  = 3 // malformed txn input
	exitBadFeature    = 4 // a valid flag with a value that cannot be used
	exitInterrupted   = 5
	exitIO            = 6
	exitBadArgs       = 128
)

// exitErr ends the command with code after printing "Error: err"; a nil
// err exits without a message, for commands that already said why.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitErr) Unwrap() error { return e.err }

func fail(code int, format string, args ...any) error {
	return &exitErr{code: code, err: fmt.Errorf(format, args...)}
}

func failWith(code int, err error) error { return &exitErr{code: code, err: err} }

// exitSilently ends the command with code and no further message.
func exitSilently(code int) error { return &exitErr{code: code} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(&globals{stdin: stdin, stdout: stdout, stderr: stderr, rawArgs: args})
	root.SetArgs(args)
	// Only the error stream is redirected: cobra writes usage after a
	// flag error to "out or stderr", which must stay stderr.
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitErr
	if !errors.As(err, &ee) {
		// cobra's own error (unknown flag or command): cobra printed it.
		return exitError
	}
	if ee.err != nil {
		fmt.Fprintln(stderr, "Error:", ee.err)
	}
	return ee.code
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "kvctl",
		Short: "kvctl talks to kvd, or to any etcd v3 server, from the command line.",
		// Once a command's flags have parsed, its errors are ours to
		// print: cobra keeps printing its own (unknown flags, commands).
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			cmd.SilenceErrors, cmd.SilenceUsage = true, true
		},
	}
	g.register(root.PersistentFlags())
	root.AddGroup(
		&cobra.Group{ID: groupKV, Title: "Key-value commands"},
		&cobra.Group{ID: groupCluster, Title: "Cluster maintenance commands"},
		&cobra.Group{ID: groupConcurrency, Title: "Concurrency commands"},
		&cobra.Group{ID: groupAuth, Title: "Authentication commands"},
		&cobra.Group{ID: groupUtility, Title: "Utility commands"},
	)
	root.SetHelpCommandGroupID(groupUtility)
	root.SetCompletionCommandGroupID(groupUtility)
	root.AddCommand(
		newGetCommand(g), newPutCommand(g), newDelCommand(g), newTxnCommand(g), newCompactionCommand(g),
		newWatchCommand(g), newLeaseCommand(g),
		newLockCommand(g), newElectCommand(g),
		newUserCommand(g), newRoleCommand(g), newAuthCommand(g),
		newMemberCommand(g), newEndpointCommand(g), newMoveLeaderCommand(g), newDefragCommand(g), newAlarmCommand(g),
		newSnapshotCommand(g), newDiscoveryCommand(g),
		newCheckCommand(g), newMakeMirrorCommand(g), newVersionCommand(g), newOptionsCommand(g, root),
	)
	hideGlobalFlags(root)
	return root
}

// Command groups in help output.
const (
	groupKV          = "kv"
	groupCluster     = "cluster"
	groupConcurrency = "concurrency"
	groupUtility     = "utility"
)

func init() {
	// etcdctl accepts unambiguous prefixes of command names ("memb list").
	cobra.EnablePrefixMatching = true
}
