package main

import (
	"bufio"
	"context"
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
		Use:   "txn [options]",
		Short: "Txn processes all the requests in one transaction",
		Long: `Txn reads a transaction from standard input: a list of compares, an empty
line, the requests to run when every compare holds, an empty line, the
requests to run otherwise, and a final empty line. Compares look like
  mod("key1") > "0"      value("key2") = "v"
and requests are put, get and del lines with their usual flags.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return fail(exitBadArgs, "txn command does not accept argument")
			}
			return run(g, func(c *client.Client, p printer) error {
				in := bufio.NewReader(cmd.InOrStdin())
				prompt := func(s string) {
					if interactive {
						fmt.Println(s)
					}
				}
				prompt("compares:")
				cmps, err := readCompares(in)
				if err != nil {
					return err
				}
				prompt("success requests (get, put, del):")
				thenOps, err := readOps(in)
				if err != nil {
					return err
				}
				prompt("failure requests (get, put, del):")
				elseOps, err := readOps(in)
				if err != nil {
					return err
				}
				resp, err := c.Txn(context.Background()).If(cmps...).Then(thenOps...).Else(elseOps...).Commit()
				if err != nil {
					return failWith(exitError, err)
				}
				return p.txn(resp)
			})
		},
	}
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Input transaction in interactive mode")
	return cmd
}

// readSection reads lines up to the empty line that ends a section.
func readSection(r *bufio.Reader, parse func(string) error) error {
	for {
		line, err := readLine(r)
		if err != nil {
			return failWith(exitInvalidInput, err)
		}
		if line == "" {
			return nil
		}
		if err := parse(line); err != nil {
			return failWith(exitInvalidInput, err)
		}
	}
}

func readCompares(r *bufio.Reader) ([]client.Cmp, error) {
	var cmps []client.Cmp
	err := readSection(r, func(line string) error {
		c, err := parseCompare(line)
		if err == nil {
			cmps = append(cmps, c)
		}
		return err
	})
	return cmps, err
}

func readOps(r *bufio.Reader) ([]client.Op, error) {
	var ops []client.Op
	err := readSection(r, func(line string) error {
		op, err := parseOp(line)
		if err == nil {
			ops = append(ops, op)
		}
		return err
	})
	return ops, err
}

// parseCompare reads target("key") op "value".
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
	var base client.Cmp
	numeric := true
	switch target {
	case "ver", "version":
		base = client.Version(key)
	case "c", "create":
		base = client.CreateRevision(key)
	case "m", "mod":
		base = client.ModRevision(key)
	case "lease":
		base = client.LeaseValue(key)
	case "val", "value":
		base, numeric = client.Value(key), false
	default:
		return client.Cmp{}, fmt.Errorf("malformed comparison: %s (unknown target %s)", line, target)
	}
	if !numeric {
		return client.Compare(base, op, val), nil
	}
	base16 := 10
	if target == "lease" {
		base16 = 16
	}
	v, err := strconv.ParseInt(val, base16, 64)
	if err != nil {
		return client.Cmp{}, fmt.Errorf("invalid txn compare request: %s", line)
	}
	return client.Compare(base, op, v), nil
}

// argsRe splits a request line into words, keeping quoted strings whole.
var argsRe = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?`)

func splitArgs(line string) []string {
	var out []string
	for _, a := range argsRe.FindAllString(line, -1) {
		if len(a) >= 2 && (a[0] == '"' || a[0] == '\'') {
			if a[0] == '"' {
				if u, err := strconv.Unquote(a); err == nil {
					a = u
				} else {
					a = a[1 : len(a)-1]
				}
			} else {
				a = a[1 : len(a)-1]
			}
		}
		out = append(out, a)
	}
	return out
}

// parseOp reads a put, get or del line with the same flags as the
// commands of those names.
func parseOp(line string) (client.Op, error) {
	args := splitArgs(line)
	if len(args) < 2 {
		return client.Op{}, fmt.Errorf("invalid txn compare request: %s", line)
	}
	var op client.Op
	var perr error
	put, get, del := &putFlags{}, &getFlags{}, &delFlags{}
	mk := func(name string, register func(*cobra.Command), build func([]string)) *cobra.Command {
		c := &cobra.Command{Use: name, Run: func(_ *cobra.Command, a []string) { build(a) }}
		register(c)
		return c
	}
	root := &cobra.Command{SilenceErrors: true, SilenceUsage: true}
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.AddCommand(
		mk("put", put.register, func(a []string) {
			k, v, opts, err := put.parse(a, nil)
			op, perr = client.OpPut(k, v, opts...), err
		}),
		mk("get", get.register, func(a []string) {
			k, opts, err := get.parse(a)
			op, perr = client.OpGet(k, opts...), err
		}),
		mk("del", del.register, func(a []string) {
			k, opts, err := del.parse(a, nil)
			op, perr = client.OpDelete(k, opts...), err
		}),
	)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		return client.Op{}, fmt.Errorf("invalid txn request: %s", line)
	}
	return op, perr
}
