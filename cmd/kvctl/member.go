package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

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
	member.AddCommand(list, newMemberAddCommand(g), newMemberRemoveCommand(g),
		newMemberUpdateCommand(g), newMemberPromoteCommand(g))
	return member
}

func newMemberAddCommand(g *globals) *cobra.Command {
	var peerURLs string
	var learner bool
	cmd := &cobra.Command{
		Use:   "add <name> --peer-urls=<url>[,<url>...] [--learner]",
		Short: "Adds a member to the cluster",
		Long: `Adds a member to the cluster, to be started afterwards under the given name.
The simple format then prints the ETCD_* settings that member needs to join.
A learner does not vote until it is promoted with "member promote".`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return fail(exitBadArgs, "member name not provided")
			case len(args) > 1:
				msg := "too many arguments"
				for _, a := range args {
					// A forgotten --peer-urls= is the usual cause.
					if strings.HasPrefix(strings.ToLower(a), "http") {
						msg += ", did you mean --peer-urls=" + a
					}
				}
				return fail(exitBadArgs, "%s", msg)
			case peerURLs == "":
				return fail(exitBadArgs, "member peer urls not provided")
			}
			name, urls := args[0], strings.Split(peerURLs, ",")
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				ctx, cancel := g.commandCtx()
				defer cancel()
				add := c.MemberAdd
				if learner {
					add = c.MemberAddAsLearner
				}
				resp, err := add(ctx, urls)
				if err != nil {
					return failWith(exitError, err)
				}
				return p.MemberAdd(name, peerURLs, resp)
			})
		},
	}
	cmd.Flags().StringVar(&peerURLs, "peer-urls", "", "the new member's peer URLs, comma-separated")
	cmd.Flags().BoolVar(&learner, "learner", false, "add the member as a non-voting learner")
	return cmd
}

// memberIDArg reads the one hexadecimal member ID the command takes.
func memberIDArg(args []string) (uint64, error) {
	if len(args) != 1 {
		return 0, fail(exitBadArgs, "member ID is not provided")
	}
	id, err := strconv.ParseUint(args[0], 16, 64)
	if err != nil {
		return 0, fail(exitBadArgs, "bad member ID arg (%w), expecting ID in Hex", err)
	}
	return id, nil
}

func newMemberRemoveCommand(g *globals) *cobra.Command {
	return memberIDCommand(g, &cobra.Command{
		Use:   "remove <member ID>",
		Short: "Removes a member, named by its hexadecimal ID, from the cluster",
	}, (*client.Client).MemberRemove, printer.MemberRemove)
}

// memberIDCommand completes cmd, whose one argument is a member ID, to
// make one membership call and print its answer.
func memberIDCommand[R any](g *globals, cmd *cobra.Command,
	call func(*client.Client, context.Context, uint64) (R, error), print func(printer, uint64, R) error) *cobra.Command {
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := memberIDArg(args)
		if err != nil {
			return err
		}
		return withClient(g, cmd, func(c *client.Client, p printer) error {
			ctx, cancel := g.commandCtx()
			defer cancel()
			resp, err := call(c, ctx, id)
			if err != nil {
				return failWith(exitError, err)
			}
			return print(p, id, resp)
		})
	}
	return cmd
}

func newMemberUpdateCommand(g *globals) *cobra.Command {
	var peerURLs string
	cmd := &cobra.Command{
		Use:   "update <member ID> --peer-urls=<url>[,<url>...]",
		Short: "Changes the peer URLs of a member, named by its hexadecimal ID",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := memberIDArg(args)
			if err != nil {
				return err
			}
			if peerURLs == "" {
				return fail(exitBadArgs, "member peer urls not provided")
			}
			urls := strings.Split(peerURLs, ",")
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				ctx, cancel := g.commandCtx()
				defer cancel()
				resp, err := c.MemberUpdate(ctx, id, urls)
				if err != nil {
					return failWith(exitError, err)
				}
				return p.MemberUpdate(id, resp)
			})
		},
	}
	cmd.Flags().StringVar(&peerURLs, "peer-urls", "", "the member's new peer URLs, comma-separated")
	return cmd
}

func newMemberPromoteCommand(g *globals) *cobra.Command {
	return memberIDCommand(g, &cobra.Command{
		Use:   "promote <member ID>",
		Short: "Makes a learner, named by its hexadecimal ID, a voting member",
		Long: `Makes a learner a voting member. The leader refuses while the learner has
not yet caught up with its log.`,
	}, (*client.Client).MemberPromote, printer.MemberPromote)
}

func newMoveLeaderCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "move-leader <transferee member ID>",
		Short: "Hands the leadership to another member",
		Long: `Hands the leadership to the member with the given hexadecimal ID. The
current leader must be among --endpoints: each is asked for its status
until the leader is found, and the request goes to it.`,
		GroupID: groupCluster,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(exitBadArgs, "move-leader command needs 1 argument")
			}
			target, err := strconv.ParseUint(args[0], 16, 64)
			if err != nil {
				return failWith(exitBadArgs, err)
			}
			p, err := g.prepare(cmd)
			if err != nil {
				return err
			}
			return moveLeader(g, p, target)
		},
	}
}

// moveLeader finds the leader among the endpoints, in order, and asks it
// to hand over to target. One deadline covers the whole search and the
// request.
func moveLeader(g *globals, p printer, target uint64) error {
	ctx, cancel := g.commandCtx()
	defer cancel()
	leaderEp, leaderID := "", uint64(0)
	for _, ep := range g.eps {
		resp, err := askEndpoint(g, ep, func(c *client.Client) (*pb.StatusResponse, error) {
			return c.Status(ctx, ep)
		})
		if err != nil {
			var ee *exitErr
			if errors.As(err, &ee) {
				return err
			}
			return failWith(exitError, err)
		}
		if resp.GetHeader().GetMemberId() == resp.Leader {
			leaderEp, leaderID = ep, resp.Leader
			break
		}
	}
	if leaderEp == "" {
		return fail(exitBadArgs, "no leader endpoint given at %v", g.eps)
	}
	c, err := g.connect([]string{leaderEp})
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.MoveLeader(ctx, target)
	if err != nil {
		return failWith(exitError, err)
	}
	return p.MoveLeader(leaderID, target, resp)
}

// memberAddSettings is what the simple format prints after a member add:
// the settings the new member must start with to join, every existing
// member's peer URLs under its name and the new one's under name.
func memberAddSettings(name, peerURLs string, r *pb.MemberAddResponse) string {
	var cluster []string
	newID := r.GetMember().GetID()
	for _, m := range r.Members {
		n := m.Name
		if m.ID == newID {
			n = name
		}
		for _, u := range m.PeerURLs {
			cluster = append(cluster, n+"="+u)
		}
	}
	return fmt.Sprintf("\nETCD_NAME=%q\nETCD_INITIAL_CLUSTER=%q\nETCD_INITIAL_ADVERTISE_PEER_URLS=%q\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
		name, strings.Join(cluster, ","), peerURLs)
}
