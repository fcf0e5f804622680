package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvd-io/kvd/pkg/client"
)

type putFlags struct {
	lease                        string
	prevKV, ignoreVal, ignoreLse bool
}

func (f *putFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.lease, "lease", "0", "lease ID (in hexadecimal) to attach to the key")
	cmd.Flags().BoolVar(&f.prevKV, "prev-kv", false, "return the previous key-value pair before modification")
	cmd.Flags().BoolVar(&f.ignoreVal, "ignore-value", false, "updates the key using its current value")
	cmd.Flags().BoolVar(&f.ignoreLse, "ignore-lease", false, "updates the key using its current lease")
}

const putUsage = "put command needs 1 argument and input from stdin or 2 arguments"

// parse turns put arguments into key, value and options; stdin supplies
// the value when only the key is given.
func (f *putFlags) parse(args []string, stdin io.Reader) (key, value string, opts []client.OpOption, err error) {
	if len(args) == 0 {
		return "", "", nil, fail(exitBadArgs, putUsage)
	}
	if f.ignoreVal && len(args) > 1 {
		return "", "", nil, fail(exitBadArgs, "put command needs only 1 argument when 'ignore-value' is set")
	}
	if !f.ignoreVal {
		switch {
		case len(args) > 1:
			value = args[1]
		case stdin != nil:
			b, rerr := io.ReadAll(stdin)
			if rerr != nil || len(b) == 0 {
				return "", "", nil, fail(exitBadArgs, putUsage)
			}
			value = string(b)
		default:
			return "", "", nil, fail(exitBadArgs, putUsage)
		}
	}
	id, err := strconv.ParseInt(f.lease, 16, 64)
	if err != nil {
		return "", "", nil, failWith(exitBadArgs, fmt.Errorf("bad lease ID (%w), expecting ID in Hex", err))
	}
	if id != 0 {
		opts = append(opts, client.WithLease(id))
	}
	if f.prevKV {
		opts = append(opts, client.WithPrevKV())
	}
	if f.ignoreVal {
		opts = append(opts, client.WithIgnoreValue())
	}
	if f.ignoreLse {
		opts = append(opts, client.WithIgnoreLease())
	}
	return args[0], value, opts, nil
}

func newPutCommand(g *globals) *cobra.Command {
	f := &putFlags{}
	cmd := &cobra.Command{
		Use:   "put [options] <key> <value> (<value> can also be given from stdin)",
		Short: "Puts the given key into the store",
		RunE: func(cmd *cobra.Command, args []string) error {
			key, value, opts, err := f.parse(args, cmd.InOrStdin())
			if err != nil {
				return err
			}
			return run(g, func(c *client.Client, p printer) error {
				ctx, cancel := g.ctx()
				defer cancel()
				resp, err := c.Put(ctx, key, value, opts...)
				if err != nil {
					return failWith(exitError, err)
				}
				return p.put(resp)
			})
		},
	}
	f.register(cmd)
	return cmd
}

// run connects, picks the printer, and runs fn.
func run(g *globals, fn func(*client.Client, printer) error) error {
	p, err := g.printer()
	if err != nil {
		return err
	}
	c, err := g.connect()
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c, p)
}

type getFlags struct {
	consistency, sortOrder, sortTarget   string
	prefix, fromKey, keysOnly, countOnly bool
	printValueOnly, stream               bool
	limit, rev                           int64
	minCreate, maxCreate, minMod, maxMod int64
}

func (f *getFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.consistency, "consistency", "l", "Linearizable(l) or Serializable(s)")
	fs.StringVar(&f.sortOrder, "order", "", "Order of results; ASCEND or DESCEND (ASCEND by default)")
	fs.StringVar(&f.sortTarget, "sort-by", "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION")
	fs.Int64Var(&f.limit, "limit", 0, "Maximum number of results")
	fs.BoolVar(&f.prefix, "prefix", false, "Get keys with matching prefix")
	fs.BoolVar(&f.fromKey, "from-key", false, "Get keys that are greater than or equal to the given key using byte compare")
	fs.Int64Var(&f.rev, "rev", 0, "Specify the kv revision")
	fs.BoolVar(&f.keysOnly, "keys-only", false, "Get only the keys")
	fs.BoolVar(&f.countOnly, "count-only", false, "Get only the count")
	fs.BoolVar(&f.printValueOnly, "print-value-only", false, `Only write values when using the "simple" output format`)
	fs.Int64Var(&f.minCreate, "min-create-rev", 0, "Minimum create revision")
	fs.Int64Var(&f.maxCreate, "max-create-rev", 0, "Maximum create revision")
	fs.Int64Var(&f.minMod, "min-mod-rev", 0, "Minimum modification revision")
	fs.Int64Var(&f.maxMod, "max-mod-rev", 0, "Maximum modification revision")
	fs.BoolVar(&f.stream, "stream", false, "Fetch the range in chunks over a stream, for large results")
}

var sortTargets = map[string]client.SortTarget{
	"CREATE": client.SortByCreateRevision, "KEY": client.SortByKey, "MODIFY": client.SortByModRevision,
	"VALUE": client.SortByValue, "VERSION": client.SortByVersion, "": client.SortByKey,
}

var sortOrders = map[string]client.SortOrder{"ASCEND": client.SortAscend, "DESCEND": client.SortDescend, "": client.SortNone}

// parse turns get arguments into a key and options, with etcdctl's
// checks in its order.
func (f *getFlags) parse(args []string) (string, []client.OpOption, error) {
	if len(args) == 0 {
		return "", nil, fail(exitBadArgs, "get command needs one argument as key and an optional argument as range_end")
	}
	if f.prefix && f.fromKey {
		return "", nil, fail(exitBadArgs, "`--prefix` and `--from-key` cannot be set at the same time, choose one")
	}
	if f.keysOnly && f.countOnly {
		return "", nil, fail(exitBadArgs, "`--keys-only` and `--count-only` cannot be set at the same time, choose one")
	}
	var opts []client.OpOption
	if f.consistency == "s" {
		opts = append(opts, client.WithSerializable())
	}
	key := args[0]
	if len(args) > 1 {
		if f.prefix || f.fromKey {
			return "", nil, fail(exitBadArgs, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
		}
		opts = append(opts, client.WithRange(args[1]))
	}
	opts = append(opts, client.WithLimit(f.limit))
	if f.rev > 0 {
		opts = append(opts, client.WithRev(f.rev))
	}
	order, ok := sortOrders[strings.ToUpper(f.sortOrder)]
	if !ok {
		return "", nil, fail(exitBadFeature, "bad sort order %v", f.sortOrder)
	}
	target, ok := sortTargets[strings.ToUpper(f.sortTarget)]
	if !ok {
		return "", nil, fail(exitBadFeature, "bad sort target %v", f.sortTarget)
	}
	opts = append(opts, client.WithSort(target, order))
	if f.prefix {
		opts = append(opts, client.WithPrefix())
	}
	if f.fromKey {
		opts = append(opts, client.WithFromKey())
	}
	if f.keysOnly {
		opts = append(opts, client.WithKeysOnly())
	}
	if f.countOnly {
		opts = append(opts, client.WithCountOnly())
	}
	opts, err := f.revFilters(opts)
	if err != nil {
		return "", nil, err
	}
	return key, opts, nil
}

func (f *getFlags) revFilters(opts []client.OpOption) ([]client.OpOption, error) {
	if f.minCreate > 0 {
		opts = append(opts, client.WithMinCreateRev(f.minCreate))
	}
	if f.maxCreate > 0 {
		if f.minCreate > f.maxCreate {
			return nil, fail(exitBadFeature, "getMinCreateRev(=%v) > getMaxCreateRev(=%v)", f.minCreate, f.maxCreate)
		}
		opts = append(opts, client.WithMaxCreateRev(f.maxCreate))
	}
	if f.minMod > 0 {
		opts = append(opts, client.WithMinModRev(f.minMod))
	}
	if f.maxMod > 0 {
		if f.minMod > f.maxMod {
			return nil, fail(exitBadFeature, "getMinModRev(=%v) > getMaxModRev(=%v)", f.minMod, f.maxMod)
		}
		opts = append(opts, client.WithMaxModRev(f.maxMod))
	}
	return opts, nil
}

func newGetCommand(g *globals) *cobra.Command {
	f := &getFlags{}
	cmd := &cobra.Command{
		Use:   "get [options] <key> [range_end]",
		Short: "Gets the key or a range of keys",
		RunE: func(_ *cobra.Command, args []string) error {
			key, opts, err := f.parse(args)
			if err != nil {
				return err
			}
			return run(g, func(c *client.Client, p printer) error {
				ctx, cancel := g.ctx()
				defer cancel()
				get := c.Get
				if f.stream {
					get = c.GetStream
				}
				resp, err := get(ctx, key, opts...)
				if err != nil {
					return failWith(exitError, err)
				}
				if f.countOnly && p.format != "fields" {
					return fail(exitBadArgs, "--count-only is only for `--write-out=fields`")
				}
				if f.printValueOnly {
					if p.format != "simple" {
						return fail(exitBadArgs, "print-value-only is only for `--write-out=simple`")
					}
					p.valueOnly = true
				}
				return p.get(resp)
			})
		},
	}
	f.register(cmd)
	return cmd
}

type delFlags struct{ prefix, prevKV, fromKey, rangeOK bool }

func (f *delFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.prefix, "prefix", false, "delete keys with matching prefix")
	cmd.Flags().BoolVar(&f.prevKV, "prev-kv", false, "return deleted key-value pairs")
	cmd.Flags().BoolVar(&f.fromKey, "from-key", false, "delete keys that are greater than or equal to the given key using byte compare")
	cmd.Flags().BoolVar(&f.rangeOK, "range", false, "delete range of keys without delay")
}

func (f *delFlags) parse(args []string, stderr io.Writer) (string, []client.OpOption, error) {
	if len(args) == 0 || len(args) > 2 {
		return "", nil, fail(exitBadArgs, "del command needs one argument as key and an optional argument as range_end")
	}
	if f.prefix && f.fromKey {
		return "", nil, fail(exitBadArgs, "`--prefix` and `--from-key` cannot be set at the same time, choose one")
	}
	var opts []client.OpOption
	if len(args) > 1 {
		if f.prefix || f.fromKey {
			return "", nil, fail(exitBadArgs, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
		}
		opts = append(opts, client.WithRange(args[1]))
		if !f.rangeOK && stderr != nil {
			fmt.Fprintf(stderr, "Warning: Keys between %q and %q will be deleted. Please interrupt the command within next 2 seconds to cancel. "+
				"You can provide `--range` flag to avoid the delay.\n", args[0], args[1])
			time.Sleep(2 * time.Second)
		}
	}
	if f.prefix {
		opts = append(opts, client.WithPrefix())
	}
	if f.prevKV {
		opts = append(opts, client.WithPrevKV())
	}
	if f.fromKey {
		opts = append(opts, client.WithFromKey())
	}
	return args[0], opts, nil
}

func newDelCommand(g *globals) *cobra.Command {
	f := &delFlags{}
	cmd := &cobra.Command{
		Use:   "del [options] <key> [range_end]",
		Short: "Removes the specified key or range of keys [key, range_end)",
		RunE: func(_ *cobra.Command, args []string) error {
			key, opts, err := f.parse(args, os.Stderr)
			if err != nil {
				return err
			}
			return run(g, func(c *client.Client, p printer) error {
				ctx, cancel := g.ctx()
				defer cancel()
				resp, err := c.Delete(ctx, key, opts...)
				if err != nil {
					return failWith(exitError, err)
				}
				return p.del(resp)
			})
		},
	}
	f.register(cmd)
	return cmd
}

func newCompactionCommand(g *globals) *cobra.Command {
	var physical bool
	cmd := &cobra.Command{
		Use:   "compaction [options] <revision>",
		Short: "Compacts the event history in etcd",
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(exitBadArgs, "compaction command needs 1 argument")
			}
			rev, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return failWith(exitError, err)
			}
			return run(g, func(c *client.Client, _ printer) error {
				var opts []client.CompactOption
				if physical {
					opts = append(opts, client.WithCompactPhysical())
				}
				ctx, cancel := g.ctx()
				defer cancel()
				if _, err := c.Compact(ctx, rev, opts...); err != nil {
					return failWith(exitError, err)
				}
				fmt.Println("compacted revision", rev)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&physical, "physical", false, "'true' to wait for compaction to physically remove all old revisions")
	return cmd
}

// readLine reads one trimmed line; io.EOF before a newline is an error,
// as the txn grammar ends every section with an empty line.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return "", io.EOF
		}
		return "", err
	}
	return strings.TrimSpace(line), nil
}
