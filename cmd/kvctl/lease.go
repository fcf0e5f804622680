package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kvd-io/kvd/pkg/client"
)

func newLeaseCommand(g *globals) *cobra.Command {
	lease := &cobra.Command{
		Use:   "lease <subcommand>",
		Short: "Lease commands: grant, revoke, timetolive, list, keep-alive",
		Long: `A lease is a time to live, in seconds, that keys can be attached to
("kvctl put --lease=<ID> key value"): when it expires or is revoked, its
keys are deleted. Lease IDs are hexadecimal.`,
		GroupID: groupKV,
	}
	lease.AddCommand(newLeaseGrantCommand(g), newLeaseRevokeCommand(g), newLeaseTimeToLiveCommand(g),
		newLeaseListCommand(g), newLeaseKeepAliveCommand(g))
	return lease
}

// leaseIDArg reads a hexadecimal lease ID.
func leaseIDArg(arg string) (client.LeaseID, error) {
	id, err := strconv.ParseInt(arg, 16, 64)
	if err != nil {
		return 0, fail(exitBadArgs, "bad lease ID arg (%w), expecting ID in Hex", err)
	}
	return id, nil
}

func newLeaseGrantCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "grant <ttl>",
		Short: "Creates a lease that lives <ttl> seconds unless kept alive",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(exitBadArgs, "lease grant command needs TTL argument")
			}
			ttl, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fail(exitBadArgs, "bad TTL (%w)", err)
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				ctx, cancel := g.commandCtx()
				defer cancel()
				resp, err := c.Grant(ctx, ttl)
				if err != nil {
					return fail(exitError, "failed to grant lease (%w)", err)
				}
				return p.Grant(resp)
			})
		},
	}
}

func newLeaseRevokeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke <leaseID>",
		Short: "Ends a lease at once, deleting the keys attached to it",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(exitBadArgs, "lease revoke command needs 1 argument")
			}
			id, err := leaseIDArg(args[0])
			if err != nil {
				return err
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				ctx, cancel := g.commandCtx()
				defer cancel()
				resp, err := c.Revoke(ctx, id)
				if err != nil {
					return fail(exitError, "failed to revoke lease (%w)", err)
				}
				return p.Revoke(id, resp)
			})
		},
	}
}

// The read-only lease commands (timetolive, list, keep-alive) are not
// bounded by --command-timeout, as in etcdctl: they wait for the server
// as long as it takes. Their failures exit with code 2.

func newLeaseTimeToLiveCommand(g *globals) *cobra.Command {
	var keys bool
	cmd := &cobra.Command{
		Use:   "timetolive <leaseID> [options]",
		Short: "Shows a lease's granted and remaining TTL, and with --keys its keys",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(exitBadArgs, "lease timetolive command needs lease ID as argument")
			}
			// etcdctl reads the ID only once it has a client: a bad
			// connection flag is reported before a bad ID.
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				id, err := leaseIDArg(args[0])
				if err != nil {
					return err
				}
				var opts []client.LeaseOption
				if keys {
					opts = append(opts, client.WithAttachedKeys())
				}
				resp, err := c.TimeToLive(context.Background(), id, opts...)
				if err != nil {
					return failWith(exitBadConnection, err)
				}
				return p.TimeToLive(resp, keys)
			})
		},
	}
	cmd.Flags().BoolVar(&keys, "keys", false, "also list the keys attached to the lease")
	return cmd
}

func newLeaseListCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Lists the IDs of every lease",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				resp, err := c.Leases(context.Background())
				if err != nil {
					return failWith(exitBadConnection, err)
				}
				return p.Leases(resp)
			})
		},
	}
}

func newLeaseKeepAliveCommand(g *globals) *cobra.Command {
	var once bool
	cmd := &cobra.Command{
		Use:   "keep-alive [options] <leaseID>",
		Short: "Renews a lease until interrupted, or once with --once",
		Long: `Renews the lease every third of its TTL and prints each renewal, until
interrupted or until the lease expires or is revoked, which ends the
command normally. With --once it renews the lease once and exits, failing
if the lease does not exist.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(exitBadArgs, "lease keep-alive command needs lease ID as argument")
			}
			id, err := leaseIDArg(args[0])
			if err != nil {
				return err
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				if once {
					resp, err := c.KeepAliveOnce(context.Background(), id)
					if err != nil {
						return failWith(exitBadConnection, err)
					}
					return p.KeepAlive(resp)
				}
				return keepAlive(g, c, p, id)
			})
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "renew the lease once and exit")
	return cmd
}

// keepAlive prints every renewal of the lease until renewing ends. There
// is no signal handling: an interrupt ends the process at once, as it
// ends etcdctl's.
func keepAlive(g *globals, c *client.Client, p printer, id client.LeaseID) error {
	renewals, err := c.KeepAlive(context.Background(), id)
	if err != nil {
		return failWith(exitBadConnection, err)
	}
	for resp := range renewals {
		if err := p.KeepAlive(resp); err != nil {
			return err
		}
	}
	// Only the simple format says why the output ended.
	if _, ok := p.(*simplePrinter); ok {
		fmt.Fprintf(g.stdout, "lease %016x expired or revoked.\n", id)
	}
	return nil
}
