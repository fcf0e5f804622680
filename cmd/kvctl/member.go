package main

import (
	"github.com/spf13/cobra"

	"github.com/kvd-io/kvd/pkg/client"
)

func newMemberCommand(g *globals) *cobra.Command {
	member := &cobra.Command{
		Use:     "member <subcommand>",
		Short:   "Membership commands",
		GroupID: groupCluster,
	}
	var consistency string
	list := &cobra.Command{
		Use:   "list",
		Short: "Lists the cluster's members",
		Long: `Lists the cluster's members. The simple format prints one comma-separated
line per member: ID, status, name, peer URLs, client URLs, learner or not.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := serializable(consistency)
			if err != nil {
				return err
			}
			var opts []client.OpOption
			if s {
				opts = append(opts, client.WithSerializable())
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				ctx, cancel := g.commandCtx()
				defer cancel()
				resp, err := c.MemberList(ctx, opts...)
				if err != nil {
					return failWith(exitError, err)
				}
				return p.MemberList(resp)
			})
		},
	}
	list.Flags().StringVar(&consistency, "consistency", "l", "l for a linearizable list, s for a serializable one")
	member.AddCommand(list)
	return member
}
