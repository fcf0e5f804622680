package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kvd-io/kvd/pkg/client"
)

// The watch command's argument errors, in etcdctl's words.
var (
	errWatchArgs         = errors.New("bad number of arguments")
	errWatchArgsEnv      = errors.New("bad number of arguments (found conflicting environment key)")
	errWatchArgsNoExec   = errors.New("bad number of arguments (found separator --, but no commands)")
	errWatchPrefixAndEnd = errors.New("`range_end` and `--prefix` are mutually exclusive")
)

type watchFlags struct {
	interactive, prefix, prevKV, progressNotify bool
	rev                                         int64
}

func (f *watchFlags) register(fs *pflag.FlagSet) {
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "read watch and progress commands from stdin")
	fs.BoolVar(&f.prefix, "prefix", false, "watch every key starting with the key")
	fs.Int64Var(&f.rev, "rev", 0, "revision to start from (0: now)")
	fs.BoolVar(&f.prevKV, "prev-kv", false, "show each event's previous key-value pair")
	fs.BoolVar(&f.progressNotify, "progress-notify", false, "ask the server for periodic progress notices")
}

// lineFlags parses the flags of one interactive watch line.
func lineFlags() (*watchFlags, *pflag.FlagSet) {
	f := &watchFlags{}
	fs := pflag.NewFlagSet("watch", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.register(fs)
	return f, fs
}

// watchEnv is the key and range end the environment names, KVCTL_*
// before ETCDCTL_*.
func watchEnv() (key, end string) {
	get := func(name string) string {
		for _, p := range envPrefixes {
			if v := os.Getenv(p + name); v != "" {
				return v
			}
		}
		return ""
	}
	return get("WATCH_KEY"), get("WATCH_RANGE_END")
}

func newWatchCommand(g *globals) *cobra.Command {
	f := &watchFlags{}
	cmd := &cobra.Command{
		Use:     "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
		Short:   "Prints the changes to a key or range as they happen",
		GroupID: groupKV,
		Long: `watch prints every change to a key, a prefix (--prefix) or the range
[key, range_end) as it happens, from now or from --rev, until killed or
until the server cancels the watch. With a command after "--", the command
runs once per event with ETCD_WATCH_REVISION, ETCD_WATCH_KEY,
ETCD_WATCH_EVENT_TYPE and ETCD_WATCH_VALUE set. ETCDCTL_WATCH_KEY and
ETCDCTL_WATCH_RANGE_END may name the key and range end instead.

With -i, lines read from stdin start watches ("watch [options] key
[range_end] [-- command ...]") or ask for a progress notice ("progress").`,
		RunE: func(cmd *cobra.Command, args []string) error {
			envKey, envEnd := watchEnv()
			if envKey == "" && envEnd != "" {
				return fail(exitBadArgs, "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=%q", envEnd)
			}
			if f.interactive {
				return watchInteractive(g, cmd, f, envKey, envEnd)
			}
			wargs, execArgs, err := parseWatchArgs(g.rawArgs, args, envKey, envEnd)
			if err != nil {
				return failWith(exitBadArgs, err)
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				wc, err := startWatch(c, f, wargs)
				if err != nil {
					return failWith(exitBadArgs, err)
				}
				w := &watchPrinter{g: g, p: p, c: c}
				if err := w.follow(wc, execArgs); err != nil {
					return err
				}
				return fail(exitInterrupted, "watch is canceled by the server")
			})
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// afterWatch is what follows the word "watch" on the command line.
func afterWatch(raw []string) []string {
	if i := slices.Index(raw, "watch"); i >= 0 {
		return raw[i+1:]
	}
	return raw
}

// envConflict says whether a key was given both in the environment and
// on the command line before "--": the arguments cobra kept are matched
// from the end against the raw ones, and an argument that does not match
// where the separator stands is one too many.
func envConflict(args, raw []string, sep int) bool {
	r := len(raw) - 1
	for w := len(args) - 1; w >= 0; w-- {
		if r >= 0 && args[w] == raw[r] {
			r--
			continue
		}
		if r == sep {
			return true
		}
	}
	return false
}

// parseWatchArgs splits the command line of a non-interactive watch into
// the key (and range end) and the command after "--", with etcdctl's
// checks. args are cobra's positional arguments, which lost the "--".
func parseWatchArgs(rawArgs, args []string, envKey, envEnd string) (watchArgs, execArgs []string, err error) {
	raw := afterWatch(rawArgs)
	sep := slices.Index(raw, "--")
	switch {
	case sep >= 0 && sep == len(raw)-1:
		return nil, nil, errWatchArgsNoExec
	case sep < 0 && len(raw) == 0 && envKey == "":
		return nil, nil, errWatchArgs
	case sep >= 0 && envKey != "" && envConflict(args, raw, sep):
		return nil, nil, errWatchArgsEnv
	case sep < 0 && len(args) > 0 && envKey != "":
		return nil, nil, errWatchArgsEnv
	}
	return splitExec(args, raw, sep, envKey, envEnd)
}

// splitExec puts the environment's key first and cuts the command after
// the separator at sep in withSep off the positional arguments.
func splitExec(args, withSep []string, sep int, envKey, envEnd string) (watchArgs, execArgs []string, err error) {
	watchArgs = args
	if envKey != "" {
		env := []string{envKey}
		if envEnd != "" {
			env = append(env, envEnd)
		}
		watchArgs = append(env, watchArgs...)
	}
	if sep < 0 {
		return watchArgs, nil, nil
	}
	execArgs = withSep[sep+1:]
	end := len(watchArgs) - 1
	for end >= 0 && watchArgs[end] != execArgs[0] {
		end--
	}
	return watchArgs[:max(end, 0)], execArgs, nil
}

// parseWatchLine reads one interactive "watch ..." line (args without
// the word watch), with its own flags; progress notices stay as the
// command line set them.
func parseWatchLine(rawArgs, args []string, envKey, envEnd string, progress bool) (*watchFlags, []string, []string, error) {
	sep := slices.Index(args, "--")
	if sep >= 0 && sep == len(args)-1 {
		return nil, nil, nil, errWatchArgsNoExec
	}
	f, fs := lineFlags()
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, err
	}
	f.progressNotify = progress
	pos := fs.Args()
	raw := afterWatch(rawArgs)
	switch {
	case sep < 0 && envKey == "" && len(pos) == 0:
		return nil, nil, nil, errWatchArgs
	case sep >= 0 && envKey != "" && envConflict(args, raw, slices.Index(raw, "--")):
		return nil, nil, nil, errWatchArgsEnv
	case sep < 0 && len(pos) > 0 && envKey != "":
		return nil, nil, nil, errWatchArgsEnv
	}
	wargs, execArgs, err := splitExec(pos, args, sep, envKey, envEnd)
	return f, wargs, execArgs, err
}

// startWatch opens the watch that args (key and optional range end) and
// f describe.
func startWatch(c *client.Client, f *watchFlags, args []string) (client.WatchChan, error) {
	if len(args) == 0 {
		return nil, errWatchArgs
	}
	opts := []client.OpOption{client.WithRev(f.rev)}
	if len(args) == 2 {
		if f.prefix {
			return nil, errWatchPrefixAndEnd
		}
		opts = append(opts, client.WithRange(args[1]))
	}
	if f.prefix {
		opts = append(opts, client.WithPrefix())
	}
	if f.prevKV {
		opts = append(opts, client.WithPrevKV())
	}
	if f.progressNotify {
		opts = append(opts, client.WithProgressNotify())
	}
	// As etcdctl: a watch on a member cut off from the cluster ends with
	// an error rather than going quiet.
	return c.Watch(client.WithRequireLeader(context.Background()), args[0], opts...), nil
}

// watchPrinter prints the responses of one or more watches, one
// response at a time, and runs the command for each event.
type watchPrinter struct {
	g  *globals
	p  printer
	c  *client.Client
	mu sync.Mutex
}

// follow prints wc's responses until the channel closes.
func (w *watchPrinter) follow(wc client.WatchChan, execArgs []string) error {
	for r := range wc {
		if err := w.print(&r, execArgs); err != nil {
			return err
		}
	}
	return nil
}

func (w *watchPrinter) print(r *client.WatchResponse, execArgs []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.Canceled {
		fmt.Fprintf(w.g.stderr, "watch was canceled (%v)\n", r.Err())
	}
	if r.IsProgressNotify() {
		fmt.Fprintf(w.g.stdout, "progress notify: %d\n", r.Header.GetRevision())
	}
	if err := w.p.Watch(r); err != nil {
		return err
	}
	if len(execArgs) == 0 {
		return nil
	}
	for _, ev := range r.Events {
		cmd := exec.CommandContext(w.c.Ctx(), execArgs[0], execArgs[1:]...)
		cmd.Env = append(os.Environ(),
			fmt.Sprintf("ETCD_WATCH_REVISION=%d", r.Header.GetRevision()),
			fmt.Sprintf("ETCD_WATCH_EVENT_TYPE=%q", ev.Type),
			fmt.Sprintf("ETCD_WATCH_KEY=%q", ev.Kv.Key),
			fmt.Sprintf("ETCD_WATCH_VALUE=%q", ev.Kv.Value))
		cmd.Stdout, cmd.Stderr = w.g.stdout, w.g.stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(w.g.stderr, "command %q error (%v)\n", execArgs, err)
			return exitSilently(exitError)
		}
	}
	return nil
}

// watchInteractive reads "watch ..." and "progress" lines from stdin
// until it ends, which ends the command.
func watchInteractive(g *globals, cmd *cobra.Command, f *watchFlags, envKey, envEnd string) error {
	return withClient(g, cmd, func(c *client.Client, p printer) error {
		w := &watchPrinter{g: g, p: p, c: c}
		fatal := make(chan error, 1)
		lines := make(chan string)
		readErr := make(chan error, 1)
		go func() {
			r := bufio.NewReader(g.stdin)
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					readErr <- err
					return
				}
				lines <- l
			}
		}()
		for {
			var l string
			select {
			case err := <-fatal:
				return err
			case err := <-readErr:
				// Let watches that already failed say so first.
				select {
				case ferr := <-fatal:
					return ferr
				default:
				}
				return fail(exitInvalidInput, "error reading watch request line: %w", err)
			case l = <-lines:
			}
			if err := interactiveLine(w, c, f, l[:len(l)-1], envKey, envEnd, fatal); err != nil {
				return err
			}
		}
	})
}

// interactiveLine runs one line of interactive input.
func interactiveLine(w *watchPrinter, c *client.Client, f *watchFlags, l, envKey, envEnd string, fatal chan error) error {
	args, err := splitWords(l)
	if err != nil {
		return err
	}
	stderr := w.g.stderr
	if len(args) == 0 {
		fmt.Fprintf(stderr, "Invalid command: %s (watch and progress supported)\n", l)
		return nil
	}
	switch args[0] {
	case "watch":
		if len(args) < 2 && envKey == "" {
			fmt.Fprintf(stderr, "Invalid command %s (command type or key is not provided)\n", l)
			return nil
		}
		lf, wargs, execArgs, err := parseWatchLine(w.g.rawArgs, args[1:], envKey, envEnd, f.progressNotify)
		if err != nil {
			return failWith(exitBadArgs, err)
		}
		wc, err := startWatch(c, lf, wargs)
		if err != nil {
			fmt.Fprintf(stderr, "Invalid command %s (%v)\n", l, err)
			return nil
		}
		go func() {
			if err := w.follow(wc, execArgs); err != nil {
				select {
				case fatal <- err:
				default:
				}
			}
		}()
	case "progress":
		if err := c.RequestProgress(client.WithRequireLeader(context.Background())); err != nil {
			return failWith(exitError, err)
		}
	default:
		fmt.Fprintf(stderr, "Invalid command %s (only support watch)\n", l)
	}
	return nil
}
