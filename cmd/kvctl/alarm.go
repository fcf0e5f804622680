package main

import (
	"fmt"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kvd-io/kvd/pkg/client"
)

// newAlarmCommand is etcdctl's alarm: list the cluster's active alarms
// (NOSPACE when a member's database reached its quota, CORRUPT when the
// corruption check found a member whose data differs), or disarm them all.
func newAlarmCommand(g *globals) *cobra.Command {
	ac := &cobra.Command{
		Use:     "alarm <subcommand>",
		Short:   "Lists or disarms the cluster's alarms",
		GroupID: groupCluster,
	}
	ac.AddCommand(
		alarmSubcommand(g, "list", "Lists every active alarm", func(c *client.Client) (*pb.AlarmResponse, error) {
			ctx, cancel := g.commandCtx()
			defer cancel()
			return c.AlarmList(ctx)
		}),
		alarmSubcommand(g, "disarm", "Disarms every active alarm", func(c *client.Client) (*pb.AlarmResponse, error) {
			ctx, cancel := g.commandCtx()
			defer cancel()
			return c.AlarmDisarm(ctx, &pb.AlarmMember{})
		}),
	)
	return ac
}

func alarmSubcommand(g *globals, name, short string, call func(*client.Client) (*pb.AlarmResponse, error)) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return fail(exitBadArgs, "alarm %s command accepts no arguments", name)
			}
			return withClient(g, cmd, func(c *client.Client, p printer) error {
				resp, err := call(c)
				if err != nil {
					return failWith(exitError, err)
				}
				return p.Alarm(resp)
			})
		},
	}
}

// alarmLine is one alarm as the simple format prints it. etcdctl prints
// the message's text form, whose spacing protobuf-go varies from build to
// build; kvctl always prints one space.
func alarmLine(a *pb.AlarmMember) string {
	return fmt.Sprintf("memberID:%d alarm:%s", a.GetMemberID(), a.GetAlarm())
}
