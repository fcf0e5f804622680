package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kvd-io/kvd/pkg/client"
)

func newTxnCommand(g *globals) *cobra.Command {
	var interactive bool
	cmd := &cobra.Command{
		Use:     "txn [options]",
		Short:   "Runs requests atomically, chosen by conditions",
		GroupID: groupKV,
		Long: `Txn reads one transaction from standard input, in three sections, each
ended by an empty line:
  1. conditions, one per line:   mod("key1") > "0"    value("key2") = "v"
     (targets: value/val, version/ver, create/c, mod/m, lease; operators: = != < >)
  2. requests to run when every condition holds: put, get and del lines with
     the flags of those commands
  3. requests to run otherwise
With -i each section is prompted for.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return fail(exitBadArgs, "txn command does not accept argument")
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				t, err := readTxn(bufio.NewReader(g.stdin), g.stderr, func(prompt string) {
					if interactive {
						fmt.Fprintln(g.stdout, prompt)
					}
				})
				if err != nil {
					return err
				}
				// Like etcdctl, a txn is not bounded by --command-timeout.
				resp, err := c.Txn(context.Background()).If(t.cmps...).Then(t.then...).Else(t.els...).Commit()
				if err != nil {
					return failWith(exitError, err)
				}
				return p.Txn(resp)
			})
		},
	}
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "prompt for each section of the transaction")
	return cmd
}

type txnInput struct {
	cmps      []client.Cmp
	then, els []client.Op
}

// readTxn reads the three sections; usage goes to stderr when a request
// line has a flag its command does not know.
func readTxn(r *bufio.Reader, stderr io.Writer, prompt func(string)) (txnInput, error) {
	var t txnInput
	prompt("compares:")
	err := readSection(r, func(line string) error {
		c, err := parseCompare(line)
		if err == nil {
			t.cmps = append(t.cmps, c)
		}
		return err
	})
	if err != nil {
		return t, err
	}
	for _, ops := range []*[]client.Op{&t.then, &t.els} {
		if ops == &t.then {
			prompt("success requests (get, put, del):")
		} else {
			prompt("failure requests (get, put, del):")
		}
		err := readSection(r, func(line string) error {
			op, err := parseOp(line, stderr)
			if err == nil {
				*ops = append(*ops, op)
			}
			return err
		})
		if err != nil {
			return t, err
		}
	}
	return t, nil
}

// readSection feeds each line to parse up to the empty line that ends
// the section. Input that ends first is an error (io.EOF), as in etcdctl.
func readSection(r *bufio.Reader, parse func(string) error) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return failWith(exitInvalidInput, err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			return nil
		}
		if err := parse(line); err != nil {
			var ee *exitErr
			if errors.As(err, &ee) {
				return err // a request's own check, with its own exit code
			}
			return failWith(exitInvalidInput, err)
		}
	}
}

var compareOps = map[string]bool{"=": true, "!=": true, "<": true, ">": true}

// parseCompare reads target("key") op "value". Numbers are decimal, lease
// IDs hex, as `kvctl lease` prints them.
func parseCompare(line string) (client.Cmp, error) {
	target, rest, ok := strings.Cut(line, "(")
	if !ok {
		return client.Cmp{}, fmt.Errorf("malformed comparison: %s", line)
	}
	var key, op, val string
	n, serr := fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val)
	if n != 3 {
		return client.Cmp{}, fmt.Errorf("malformed comparison: %s; got %s(%q) %s %q", line, target, key, op, val)
	}
	if serr != nil {
		return client.Cmp{}, fmt.Errorf("malformed comparison: %s (%w)", line, serr)
	}
	if !compareOps[op] {
		return client.Cmp{}, fmt.Errorf("malformed comparison: %s (unknown operator %s)", line, op)
	}
	var cmp client.Cmp
	base := 10
	switch target {
	case "val", "value":
		return client.Compare(client.Value(key), op, val), nil
	case "ver", "version":
		cmp = client.Version(key)
	case "c", "create":
		cmp = client.CreateRevision(key)
	case "m", "mod":
		cmp = client.ModRevision(key)
	case "lease":
		cmp, base = client.LeaseValue(key), 16
	default:
		return client.Cmp{}, fmt.Errorf("malformed comparison: %s (unknown target %s)", line, target)
	}
	v, err := strconv.ParseInt(val, base, 64)
	if err != nil {
		return client.Cmp{}, fmt.Errorf("invalid txn compare request: %s", line)
	}
	return client.Compare(cmp, op, v), nil
}

// wordRe splits a request line into words: "double quoted" (with Go
// escapes), 'single quoted', or bare.
var wordRe = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?`)

func splitWords(line string) ([]string, error) {
	words := wordRe.FindAllString(line, -1)
	for i, w := range words {
		switch {
		case strings.HasPrefix(w, "'"):
			words[i] = w[1 : len(w)-1]
		case strings.HasPrefix(w, `"`):
			if _, err := fmt.Sscanf(w, "%q", &words[i]); err != nil {
				return nil, failWith(exitInvalidInput, err)
			}
		}
	}
	return words, nil
}

// parseOp reads a put, get or del line with the flags of the command of
// that name; the commands' own argument checks apply, with their codes.
func parseOp(line string, stderr io.Writer) (client.Op, error) {
	args, err := splitWords(line)
	if err != nil {
		return client.Op{}, err
	}
	if len(args) < 2 {
		return client.Op{}, fmt.Errorf("invalid txn compare request: %s", line)
	}
	var op client.Op
	var opErr error
	put, get, del := &putFlags{}, &getFlags{}, &delFlags{}
	request := func(use string, register func(*cobra.Command), build func([]string)) *cobra.Command {
		c := &cobra.Command{Use: use, Run: func(_ *cobra.Command, a []string) { build(a) }}
		register(c)
		return c
	}
	root := &cobra.Command{SilenceErrors: true}
	root.SetOut(stderr) // usage after a bad flag goes to stderr
	root.AddCommand(
		request("put <key> <value>", put.register, func(a []string) {
			var k, v string
			var opts []client.OpOption
			k, v, opts, opErr = put.parse(a, nil)
			op = client.OpPut(k, v, opts...)
		}),
		request("get <key> [range_end]", get.register, func(a []string) {
			var k string
			var opts []client.OpOption
			k, opts, opErr = get.parse(a)
			op = client.OpGet(k, opts...)
		}),
		request("del <key> [range_end]", del.register, func(a []string) {
			var k string
			var opts []client.OpOption
			k, opts, opErr = del.parse(a, nil)
			op = client.OpDelete(k, opts...)
		}),
	)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		return client.Op{}, fmt.Errorf("invalid txn request: %s", line)
	}
	return op, opErr
}
