package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/client"
)

func newAuthCommand(g *globals) *cobra.Command {
	auth := &cobra.Command{
		Use:   "auth <enable or disable>",
		Short: "Auth commands: enable, disable, status",
		Long: `Switches authentication on and off. While it is on, every request needs a
user (--user) whose roles allow it.`,
		GroupID: groupAuth,
	}
	auth.AddCommand(
		authSwitchCommand(g, "enable", "Switches authentication on; needs a root user", enableAuth, "Authentication Enabled"),
		authSwitchCommand(g, "disable", "Switches authentication off; root only", disableAuth, "Authentication Disabled"),
		newAuthStatusCommand(g))
	return auth
}

// authSwitchCommand is auth enable or disable: one change, bounded by
// --command-timeout, then the same sentence in every output format.
func authSwitchCommand(g *globals, name, short string, change func(*globals, *client.Client) error, done string) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return fail(exitBadArgs, "auth %s command does not accept any arguments", name)
			}
			return withClient(g, cmd, func(c *client.Client, _ printer) error {
				if err := change(g, c); err != nil {
					return failWith(exitError, err)
				}
				fmt.Fprintln(g.stdout, done)
				return nil
			})
		},
	}
}

// enableAuth switches auth on. A root user without the root role is
// given it (the role is created first), and the switch tried again, as
// etcdctl does; a missing root user is left for the operator to add.
func enableAuth(g *globals, c *client.Client) error {
	ctx, cancel := g.commandCtx()
	defer cancel()
	for {
		_, err := c.AuthEnable(ctx)
		if !errors.Is(err, rpctypes.ErrRootRoleNotExist) {
			return err
		}
		if _, err := c.RoleAdd(ctx, "root"); err != nil {
			return err
		}
		if _, err := c.UserGrantRole(ctx, "root", "root"); err != nil {
			return err
		}
	}
}

func disableAuth(g *globals, c *client.Client) error {
	ctx, cancel := g.commandCtx()
	defer cancel()
	_, err := c.AuthDisable(ctx)
	return err
}

func newAuthStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Shows whether authentication is on, and the revision of users and roles",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return fail(exitBadArgs, "auth status command does not accept any arguments")
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				ctx, cancel := g.commandCtx()
				defer cancel()
				resp, err := c.AuthStatus(ctx)
				if err != nil {
					return failWith(exitError, err)
				}
				return p.Auth(authResult{resp: resp})
			})
		},
	}
}
