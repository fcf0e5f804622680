package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvd-io/kvd/pkg/client"
)

// The put, get and del flags live in structs of their own because txn
// parses its request lines with the same flags.

type putFlags struct {
	lease                          string
	prevKV, ignoreValue, ignoreLse bool
}

func (f *putFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.lease, "lease", "0", "attach the key to this lease (ID in hex)")
	fs.BoolVar(&f.prevKV, "prev-kv", false, "also print the key-value pair the put replaced")
	fs.BoolVar(&f.ignoreValue, "ignore-value", false, "keep the key's current value (give no value)")
	fs.BoolVar(&f.ignoreLse, "ignore-lease", false, "keep the key's current lease")
}

const putUsage = "put command needs 1 argument and input from stdin or 2 arguments"

// parse turns put arguments into key, value and options; stdin gives the
// value when only the key is on the command line.
func (f *putFlags) parse(args []string, stdin io.Reader) (key, value string, opts []client.OpOption, err error) {
	if len(args) == 0 {
		return "", "", nil, fail(exitBadArgs, putUsage)
	}
	if f.ignoreValue && len(args) > 1 {
		return "", "", nil, fail(exitBadArgs, "put command needs only 1 argument when 'ignore-value' is set")
	}
	if !f.ignoreValue {
		if len(args) > 1 {
			value = args[1]
		} else {
			b, rerr := readAll(stdin)
			if rerr != nil || len(b) == 0 {
				return "", "", nil, fail(exitBadArgs, putUsage)
			}
			value = string(b)
		}
	}
	id, err := strconv.ParseInt(f.lease, 16, 64)
	if err != nil {
		return "", "", nil, fail(exitBadArgs, "bad lease ID (%w), expecting ID in Hex", err)
	}
	if id != 0 {
		opts = append(opts, client.WithLease(id))
	}
	if f.prevKV {
		opts = append(opts, client.WithPrevKV())
	}
	if f.ignoreValue {
		opts = append(opts, client.WithIgnoreValue())
	}
	if f.ignoreLse {
		opts = append(opts, client.WithIgnoreLease())
	}
	return args[0], value, opts, nil
}

func readAll(r io.Reader) ([]byte, error) {
	if r == nil {
		return nil, io.EOF
	}
	return io.ReadAll(r)
}

func newPutCommand(g *globals) *cobra.Command {
	f := &putFlags{}
	cmd := &cobra.Command{
		Use:     "put [options] <key> <value>",
		Short:   "Writes a value under a key",
		GroupID: groupKV,
		Long: `Writes <value> under <key>. Without <value> on the command line (and without
--ignore-value) the value is read from standard input, so
  kvctl put config < config.yaml
stores the file. A value starting with '-' would be read as a flag: put
"--" before the arguments, as in "kvctl put -- key -value".`,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, value, opts, err := f.parse(args, g.stdin)
			if err != nil {
				return err
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				ctx, cancel := g.commandCtx()
				defer cancel()
				resp, err := c.Put(ctx, key, value, opts...)
				if err != nil {
					return failWith(exitError, err)
				}
				return p.Put(resp)
			})
		},
	}
	f.register(cmd)
	return cmd
}

// withClient prepares the globals, connects, and runs fn.
func withClient(g *globals, cmd *cobra.Command, fn func(*client.Client, printer) error) error {
	p, err := g.prepare(cmd)
	if err != nil {
		return err
	}
	c, err := g.connect(nil)
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
	fs.StringVar(&f.consistency, "consistency", "l", "l for a linearizable read, s for a serializable one")
	fs.StringVar(&f.sortOrder, "order", "", "ASCEND or DESCEND (ASCEND when a sort target is given)")
	fs.StringVar(&f.sortTarget, "sort-by", "", "sort by CREATE, KEY, MODIFY, VALUE or VERSION")
	fs.Int64Var(&f.limit, "limit", 0, "return at most this many keys")
	fs.BoolVar(&f.prefix, "prefix", false, "read every key starting with <key>")
	fs.BoolVar(&f.fromKey, "from-key", false, "read every key from <key> on, in byte order")
	fs.Int64Var(&f.rev, "rev", 0, "read at this revision")
	fs.BoolVar(&f.keysOnly, "keys-only", false, "return keys without values")
	fs.BoolVar(&f.countOnly, "count-only", false, "return only how many keys match (with -w fields)")
	fs.BoolVar(&f.printValueOnly, "print-value-only", false, "print values without keys (with -w simple)")
	fs.Int64Var(&f.minCreate, "min-create-rev", 0, "keep keys created at or after this revision")
	fs.Int64Var(&f.maxCreate, "max-create-rev", 0, "keep keys created at or before this revision")
	fs.Int64Var(&f.minMod, "min-mod-rev", 0, "keep keys modified at or after this revision")
	fs.Int64Var(&f.maxMod, "max-mod-rev", 0, "keep keys modified at or before this revision")
	fs.BoolVar(&f.stream, "stream", false, "read through the RangeStream call, in chunks (for large ranges)")
}

var sortTargets = map[string]client.SortTarget{
	"": client.SortByKey, "KEY": client.SortByKey, "CREATE": client.SortByCreateRevision,
	"MODIFY": client.SortByModRevision, "VALUE": client.SortByValue, "VERSION": client.SortByVersion,
}

var sortOrders = map[string]client.SortOrder{"": client.SortNone, "ASCEND": client.SortAscend, "DESCEND": client.SortDescend}

// serializable reads a --consistency value.
func serializable(consistency string) (bool, error) {
	switch consistency {
	case "s":
		return true, nil
	case "l":
		return false, nil
	}
	return false, fail(exitBadFeature, "unknown consistency flag %q", consistency)
}

// parse turns get arguments into a key and options, with etcdctl's checks
// in etcdctl's order, so the same mistake gets the same message.
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
	s, err := serializable(f.consistency)
	if err != nil {
		return "", nil, err
	}
	if s {
		opts = append(opts, client.WithSerializable())
	}
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
	return f.revisionFilters(args[0], opts)
}

func (f *getFlags) revisionFilters(key string, opts []client.OpOption) (string, []client.OpOption, error) {
	if f.minCreate > 0 {
		opts = append(opts, client.WithMinCreateRev(f.minCreate))
	}
	if f.maxCreate > 0 {
		if f.minCreate > f.maxCreate {
			return "", nil, fail(exitBadFeature, "getMinCreateRev(=%v) > getMaxCreateRev(=%v)", f.minCreate, f.maxCreate)
		}
		opts = append(opts, client.WithMaxCreateRev(f.maxCreate))
	}
	if f.minMod > 0 {
		opts = append(opts, client.WithMinModRev(f.minMod))
	}
	if f.maxMod > 0 {
		if f.minMod > f.maxMod {
			return "", nil, fail(exitBadFeature, "getMinModRev(=%v) > getMaxModRev(=%v)", f.minMod, f.maxMod)
		}
		opts = append(opts, client.WithMaxModRev(f.maxMod))
	}
	return key, opts, nil
}

func newGetCommand(g *globals) *cobra.Command {
	f := &getFlags{}
	cmd := &cobra.Command{
		Use:     "get [options] <key> [range_end]",
		Short:   "Reads a key, or the keys in [key, range_end)",
		GroupID: groupKV,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, opts, err := f.parse(args)
			if err != nil {
				return err
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				ctx, cancel := g.commandCtx()
				defer cancel()
				get := c.Get
				if f.stream {
					get = c.GetStream
				}
				resp, err := get(ctx, key, opts...)
				if err != nil {
					return failWith(exitError, err)
				}
				// etcdctl checks these against the format only now, after
				// the read, and so do we: the same mistake fails the same way.
				if _, fields := p.(*fieldsPrinter); f.countOnly && !fields {
					return fail(exitBadArgs, "--count-only is only for `--write-out=fields`")
				}
				if f.printValueOnly {
					simple, ok := p.(*simplePrinter)
					if !ok {
						return fail(exitBadArgs, "print-value-only is only for `--write-out=simple`")
					}
					simple.valueOnly = true
				}
				return p.Get(resp)
			})
		},
	}
	f.register(cmd)
	return cmd
}

type delFlags struct{ prefix, prevKV, fromKey, noDelay bool }

func (f *delFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVar(&f.prefix, "prefix", false, "delete every key starting with <key>")
	fs.BoolVar(&f.prevKV, "prev-kv", false, "also print the deleted key-value pairs")
	fs.BoolVar(&f.fromKey, "from-key", false, "delete every key from <key> on, in byte order")
	fs.BoolVar(&f.noDelay, "range", false, "delete [key, range_end) at once, without the 2 second warning")
}

// parse turns del arguments into a key and options. A range given without
// --range is announced on warn and carried out after 2 seconds, time to
// interrupt a mistake; the txn parser passes a nil warn.
func (f *delFlags) parse(args []string, warn io.Writer) (string, []client.OpOption, error) {
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
		if !f.noDelay && warn != nil {
			fmt.Fprintf(warn, "Warning: Keys between %q and %q will be deleted. Please interrupt the command within next 2 seconds to cancel. "+
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
		Use:     "del [options] <key> [range_end]",
		Short:   "Deletes a key, or the keys in [key, range_end)",
		GroupID: groupKV,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, opts, err := f.parse(args, g.stderr)
			if err != nil {
				return err
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				ctx, cancel := g.commandCtx()
				defer cancel()
				resp, err := c.Delete(ctx, key, opts...)
				if err != nil {
					return failWith(exitError, err)
				}
				return p.Del(resp)
			})
		},
	}
	f.register(cmd)
	return cmd
}

func newCompactionCommand(g *globals) *cobra.Command {
	var physical bool
	cmd := &cobra.Command{
		Use:     "compaction [options] <revision>",
		Short:   "Discards the history before a revision",
		GroupID: groupKV,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(exitBadArgs, "compaction command needs 1 argument")
			}
			rev, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return failWith(exitError, err)
			}
			var opts []client.CompactOption
			if physical {
				opts = append(opts, client.WithCompactPhysical())
			}
			return withClient(g, cmd, func(c *client.Client, _ printer) error {
				ctx, cancel := g.commandCtx()
				defer cancel()
				if _, err := c.Compact(ctx, rev, opts...); err != nil {
					return failWith(exitError, err)
				}
				fmt.Fprintln(g.stdout, "compacted revision", rev)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&physical, "physical", false, "return only once the old revisions are gone from disk")
	return cmd
}
