package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

type mirrorFlags struct {
	prefix, destPrefix string
	noDestPrefix       bool
	maxTxnOps          uint
	rev                int64

	destCert, destKey, destCACert string
	destInsecureTransport         bool
	destUser, destPassword        string

	printEvery time.Duration
}

func newMakeMirrorCommand(g *globals) *cobra.Command {
	f := &mirrorFlags{}
	cmd := &cobra.Command{
		Use:     "make-mirror [options] <destination>",
		Short:   "Copies keys to another cluster and keeps the copy up to date",
		GroupID: groupUtility,
		Long: `Copies every key under --prefix from the cluster of --endpoints to the
destination cluster as of one revision, then follows the source's changes and
applies each revision's changes to the destination in one transaction. The
number of keys copied and changes applied so far is printed every 30 seconds.
Either cluster may be kvd or etcd.`,
		RunE: func(cmd *cobra.Command, args []string) error { return makeMirror(g, cmd, f, args) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.prefix, "prefix", "", "mirror only the keys under this prefix")
	fs.Int64Var(&f.rev, "rev", 0, "skip the initial copy and follow the changes from this revision on")
	fs.UintVar(&f.maxTxnOps, "max-txn-ops", 128, "most operations in one transaction on the destination while following changes")
	fs.StringVar(&f.destPrefix, "dest-prefix", "", "put the mirrored keys under this prefix at the destination instead of --prefix")
	fs.BoolVar(&f.noDestPrefix, "no-dest-prefix", false, "strip --prefix: mirror the keys to the root of the destination's key space")
	fs.StringVar(&f.destCert, "dest-cert", "", "client certificate for TLS to the destination")
	fs.StringVar(&f.destKey, "dest-key", "", "client private key for TLS to the destination")
	fs.StringVar(&f.destCACert, "dest-cacert", "", "CA bundle to verify the destination's certificates")
	fs.BoolVar(&f.destInsecureTransport, "dest-insecure-transport", true, "talk plain text to the destination unless a TLS flag asks for TLS")
	fs.StringVar(&f.destUser, "dest-user", "", "user name, or name:password, at the destination (asks for the password when missing)")
	fs.StringVar(&f.destPassword, "dest-password", "", "password for --dest-user (then --dest-user must not contain one)")
	fs.DurationVar(&f.printEvery, "print-interval", 30*time.Second, "how often to print the count of keys mirrored")
	_ = fs.MarkHidden("print-interval") // etcdctl has no such flag; tests shorten it
	return cmd
}

func makeMirror(g *globals, cmd *cobra.Command, f *mirrorFlags, args []string) error {
	if len(args) != 1 {
		return fail(exitBadArgs, "make-mirror takes one destination argument")
	}
	if _, err := g.prepare(cmd); err != nil {
		return err
	}
	dg, err := destGlobals(g, f)
	if err != nil {
		return err
	}
	if f.noDestPrefix && f.destPrefix != "" {
		return fail(exitBadArgs, "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one")
	}
	dst, err := dg.connect([]string{args[0]})
	if err != nil {
		return err
	}
	defer dst.Close()
	src, err := g.connect(nil)
	if err != nil {
		return err
	}
	defer src.Close()

	destPrefix := f.destPrefix
	if !f.noDestPrefix && destPrefix == "" {
		destPrefix = f.prefix
	}
	m := &mirror{
		src: src, srcWatch: src, dst: dst,
		prefix: f.prefix, destPrefix: destPrefix,
		maxOps:      max(int(f.maxTxnOps), 1),
		callTimeout: g.commandTimeout,
		log:         g.logger(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go printMirrored(ctx, g, &m.total, f.printEvery)
	return failWith(exitError, m.run(ctx, f.rev))
}

// destGlobals is g with the destination's TLS and auth flags in place of
// the source's.
func destGlobals(g *globals, f *mirrorFlags) (*globals, error) {
	dg := *g
	dg.cert, dg.key, dg.cacert = f.destCert, f.destKey, f.destCACert
	dg.insecureTransport, dg.insecureSkipVerify = f.destInsecureTransport, false
	dg.jwtToken, dg.username, dg.passwd = "", "", ""
	switch name, pw, hasPw := strings.Cut(f.destUser, ":"); {
	case f.destUser == "":
	case f.destPassword != "":
		dg.username, dg.passwd = f.destUser, f.destPassword
	case hasPw:
		dg.username, dg.passwd = name, pw
	default:
		pw, err := readSecret(g.stdin, g.stdout, "Destination Password: ")
		if err != nil {
			return nil, failWith(exitError, err)
		}
		dg.username, dg.passwd = f.destUser, pw
	}
	return &dg, nil
}

// printMirrored prints the running count, as etcdctl does, until ctx ends.
func printMirrored(ctx context.Context, g *globals, total *atomic.Int64, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fmt.Fprintln(g.stdout, total.Load())
		}
	}
}
