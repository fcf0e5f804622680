package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kvd-io/kvd/pkg/client"
)

// groupAuth holds the user, role and auth commands in help output.
const groupAuth = "authentication"

func newUserCommand(g *globals) *cobra.Command {
	user := &cobra.Command{
		Use:   "user <subcommand>",
		Short: "User commands: add, delete, get, list, passwd, grant-role, revoke-role",
		Long: `Users log in with --user name:password. While auth is on, a user may do
what its roles allow; managing users and roles takes the root role.`,
		GroupID: groupAuth,
	}
	user.AddCommand(newUserAddCommand(g), newUserDeleteCommand(g), newUserGetCommand(g), newUserListCommand(g),
		newUserPasswdCommand(g), newUserGrantRoleCommand(g), newUserRevokeRoleCommand(g))
	return user
}

// authCall makes one Auth call and prints its answer. The user and role
// commands are not bounded by --command-timeout, as in etcdctl: they
// wait for the server as long as it takes.
func authCall(g *globals, cmd *cobra.Command, res authResult, call func(context.Context, *client.Client) (authResponse, error)) error {
	return withClient(g, cmd, func(c *client.Client, p printer) error {
		resp, err := call(context.Background(), c)
		if err != nil {
			return failWith(exitError, err)
		}
		res.resp = resp
		return p.Auth(res)
	})
}

func newUserAddCommand(g *globals) *cobra.Command {
	var interactive, noPassword bool
	var newPassword string
	cmd := &cobra.Command{
		Use:   "add <user name or user:password> [options]",
		Short: "Creates a user",
		Long: `Creates a user. The password comes from --new-user-password, from
"name:password", or is asked for twice without echo; with
--interactive=false it is read from stdin instead, without a prompt.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(exitBadArgs, "user add command requires user name as its argument")
			}
			name, password := args[0], newPassword
			opts := &client.UserAddOptions{NoPassword: noPassword}
			switch user, pw, found := strings.Cut(args[0], ":"); {
			case noPassword:
				password = ""
			case newPassword != "":
			case found:
				if user == "" {
					return fail(exitBadArgs, "empty user name is not allowed")
				}
				name, password = user, pw
			default:
				var err error
				if password, err = newUserPassword(g, args[0], interactive); err != nil {
					return err
				}
			}
			return authCall(g, cmd, authResult{user: name}, func(ctx context.Context, c *client.Client) (authResponse, error) {
				return c.UserAddWithOptions(ctx, name, password, opts)
			})
		},
	}
	cmd.Flags().BoolVar(&interactive, "interactive", true, "ask for the password on the terminal; false reads it from stdin")
	cmd.Flags().StringVar(&newPassword, "new-user-password", "", "the new user's password")
	cmd.Flags().BoolVar(&noPassword, "no-password", false, "create a user without a password, for TLS common-name authentication only")
	return cmd
}

// newUserPassword is the password for user add and passwd: asked for
// twice, or the first word on stdin when not interactive.
func newUserPassword(g *globals, name string, interactive bool) (string, error) {
	if !interactive {
		var pw string
		_, _ = fmt.Fscanf(g.stdin, "%s", &pw) // nothing on stdin is an empty password
		return pw, nil
	}
	first, err := readSecret(g.stdin, g.stdout, fmt.Sprintf("Password of %s: ", name))
	if err != nil {
		return "", fail(exitBadArgs, "failed to ask password: %w", err)
	}
	if first == "" {
		return "", fail(exitBadArgs, "empty password")
	}
	again, err := readSecret(g.stdin, g.stdout, fmt.Sprintf("Type password of %s again for confirmation: ", name))
	if err != nil {
		return "", fail(exitBadArgs, "failed to ask password: %w", err)
	}
	if first != again {
		return "", fail(exitBadArgs, "given passwords are different")
	}
	return first, nil
}

func newUserDeleteCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete <user name>",
		Short: "Deletes a user",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(exitBadArgs, "user delete command requires user name as its argument")
			}
			return authCall(g, cmd, authResult{user: args[0]}, func(ctx context.Context, c *client.Client) (authResponse, error) {
				return c.UserDelete(ctx, args[0])
			})
		},
	}
}

func newUserGetCommand(g *globals) *cobra.Command {
	var detail bool
	cmd := &cobra.Command{
		Use:   "get <user name> [options]",
		Short: "Shows a user's roles, and with --detail their permissions",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(exitBadArgs, "user get command requires user name as its argument")
			}
			name := args[0]
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				resp, err := c.UserGet(context.Background(), name)
				if err != nil {
					return failWith(exitError, err)
				}
				if !detail {
					return p.Auth(authResult{user: name, resp: resp})
				}
				return userRoles(g, c, p, name, resp.Roles)
			})
		},
	}
	cmd.Flags().BoolVar(&detail, "detail", false, "also show the permissions of each of the user's roles")
	return cmd
}

// userRoles is user get --detail: a plain heading whatever the format
// (as etcdctl prints it), then each role as role get prints it.
func userRoles(g *globals, c *client.Client, p printer, name string, roles []string) error {
	fmt.Fprintf(g.stdout, "User: %s\n", name)
	for _, role := range roles {
		fmt.Fprintln(g.stdout)
		resp, err := c.RoleGet(context.Background(), role)
		if err != nil {
			return failWith(exitError, err)
		}
		if err := p.Auth(authResult{role: role, resp: resp}); err != nil {
			return err
		}
	}
	return nil
}

func newUserListCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Lists every user",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return fail(exitBadArgs, "user list command requires no arguments")
			}
			return authCall(g, cmd, authResult{}, func(ctx context.Context, c *client.Client) (authResponse, error) {
				return c.UserList(ctx)
			})
		},
	}
}

func newUserPasswdCommand(g *globals) *cobra.Command {
	var interactive bool
	cmd := &cobra.Command{
		Use:   "passwd <user name> [options]",
		Short: "Changes a user's password",
		Long: `Changes a user's password, asked for twice without echo; with
--interactive=false it is read from stdin instead, without a prompt.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(exitBadArgs, "user passwd command requires user name as its argument")
			}
			password, err := newUserPassword(g, args[0], interactive)
			if err != nil {
				return err
			}
			return authCall(g, cmd, authResult{user: args[0]}, func(ctx context.Context, c *client.Client) (authResponse, error) {
				return c.UserChangePassword(ctx, args[0], password)
			})
		},
	}
	cmd.Flags().BoolVar(&interactive, "interactive", true, "ask for the password on the terminal; false reads it from stdin")
	return cmd
}

func newUserGrantRoleCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "grant-role <user name> <role name>",
		Short: "Gives a user a role",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fail(exitBadArgs, "user grant command requires user name and role name as its argument")
			}
			return authCall(g, cmd, authResult{user: args[0], role: args[1]}, func(ctx context.Context, c *client.Client) (authResponse, error) {
				return c.UserGrantRole(ctx, args[0], args[1])
			})
		},
	}
}

func newUserRevokeRoleCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke-role <user name> <role name>",
		Short: "Takes a role away from a user",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fail(exitBadArgs, "user revoke-role requires user name and role name as its argument")
			}
			return authCall(g, cmd, authResult{user: args[0], role: args[1]}, func(ctx context.Context, c *client.Client) (authResponse, error) {
				return c.UserRevokeRole(ctx, args[0], args[1])
			})
		},
	}
}
