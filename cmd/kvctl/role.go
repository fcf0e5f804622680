package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/kvd-io/kvd/pkg/client"
)

func newRoleCommand(g *globals) *cobra.Command {
	role := &cobra.Command{
		Use:   "role <subcommand>",
		Short: "Role commands: add, delete, get, list, grant-permission, revoke-permission",
		Long: `A role is a set of permissions to read, write or both, each on a key or a
range of keys. Users get permissions through the roles they are granted;
the role named root may do anything.`,
		GroupID: groupAuth,
	}
	role.AddCommand(newRoleAddCommand(g), newRoleDeleteCommand(g), newRoleGetCommand(g), newRoleListCommand(g),
		newRoleGrantCommand(g), newRoleRevokeCommand(g))
	return role
}

// roleNameCommand completes cmd, whose one argument is a role name, to
// make one call and print its answer.
func roleNameCommand[R authResponse](g *globals, cmd *cobra.Command, usage string,
	call func(*client.Client, context.Context, string) (R, error)) *cobra.Command {
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fail(exitBadArgs, "%s", usage)
		}
		return authCall(g, cmd, authResult{role: args[0]}, func(ctx context.Context, c *client.Client) (authResponse, error) {
			return call(c, ctx, args[0])
		})
	}
	return cmd
}

func newRoleAddCommand(g *globals) *cobra.Command {
	return roleNameCommand(g, &cobra.Command{Use: "add <role name>", Short: "Creates a role without permissions"},
		"role add command requires role name as its argument", (*client.Client).RoleAdd)
}

func newRoleDeleteCommand(g *globals) *cobra.Command {
	return roleNameCommand(g, &cobra.Command{Use: "delete <role name>", Short: "Deletes a role, taking it from its users"},
		"role delete command requires role name as its argument", (*client.Client).RoleDelete)
}

func newRoleGetCommand(g *globals) *cobra.Command {
	return roleNameCommand(g, &cobra.Command{Use: "get <role name>", Short: "Shows the keys a role may read and write"},
		"role get command requires role name as its argument", (*client.Client).RoleGet)
}

func newRoleListCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Lists every role",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return fail(exitBadArgs, "role list command requires no arguments")
			}
			return authCall(g, cmd, authResult{}, func(ctx context.Context, c *client.Client) (authResponse, error) {
				return c.RoleList(ctx)
			})
		},
	}
}

// permFlags choose how a permission's key becomes a range.
type permFlags struct{ prefix, fromKey bool }

func (f *permFlags) register(cmd *cobra.Command, verb string) {
	cmd.Flags().BoolVar(&f.prefix, "prefix", false, verb+" the permission on every key starting with <key>")
	cmd.Flags().BoolVar(&f.fromKey, "from-key", false, verb+" the permission on every key from <key> on, in byte order")
}

// permRange turns the key and optional range end typed after the role
// into what the server takes. An empty key stands for the smallest key,
// "\x00" (the server refuses an empty one), and with --prefix or
// --from-key for the whole key space; a range end of "\x00" means no end.
func (f *permFlags) permRange(args []string) (key, end string, err error) {
	if f.prefix && f.fromKey && (args[0] == "" || len(args) == 1) {
		return "", "", fail(exitBadArgs, "--from-key and --prefix flags are mutually exclusive")
	}
	if args[0] == "" {
		if f.prefix || f.fromKey {
			return "\x00", "\x00", nil
		}
		return "\x00", "", nil
	}
	switch {
	case len(args) == 1 && f.prefix:
		return args[0], client.GetPrefixRangeEnd(args[0]), nil
	case len(args) == 1 && f.fromKey:
		return args[0], "\x00", nil
	case len(args) == 1:
		return args[0], "", nil
	case f.prefix:
		return "", "", fail(exitBadArgs, "unexpected endkey argument with --prefix flag")
	case f.fromKey:
		return "", "", fail(exitBadArgs, "unexpected endkey argument with --from-key flag")
	}
	return args[0], args[1], nil
}

func newRoleGrantCommand(g *globals) *cobra.Command {
	var flags permFlags
	cmd := &cobra.Command{
		Use:   "grant-permission [options] <role name> <permission type> <key> [endkey]",
		Short: "Lets a role read, write or readwrite a key or a range of keys",
		Long: `Lets a role read, write or readwrite (the permission type) a key, the
keys in [key, endkey), every key starting with key (--prefix), or every
key from key on (--from-key).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 3 {
				return fail(exitBadArgs, "role grant command requires role name, permission type, and key [endkey] as its argument")
			}
			perm, err := client.StrToPermissionType(args[1])
			if err != nil {
				return failWith(exitBadArgs, err)
			}
			key, end, err := flags.permRange(args[2:])
			if err != nil {
				return err
			}
			return authCall(g, cmd, authResult{role: args[0]}, func(ctx context.Context, c *client.Client) (authResponse, error) {
				return c.RoleGrantPermission(ctx, args[0], key, end, perm)
			})
		},
	}
	flags.register(cmd, "grant")
	return cmd
}

func newRoleRevokeCommand(g *globals) *cobra.Command {
	var flags permFlags
	cmd := &cobra.Command{
		Use:   "revoke-permission <role name> <key> [endkey]",
		Short: "Takes away the permission a role was granted on a key or range",
		Long: `Takes away the permission a role was granted on exactly this key or range,
named as it was granted (--prefix, --from-key or an end key).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return fail(exitBadArgs, "role revoke-permission command requires role name and key [endkey] as its argument")
			}
			key, end, err := flags.permRange(args[1:])
			if err != nil {
				return err
			}
			// The answer names the key as typed and the end as sent.
			res := authResult{role: args[0], key: args[1], end: end}
			return authCall(g, cmd, res, func(ctx context.Context, c *client.Client) (authResponse, error) {
				return c.RoleRevokePermission(ctx, args[0], key, end)
			})
		},
	}
	flags.register(cmd, "revoke")
	return cmd
}
