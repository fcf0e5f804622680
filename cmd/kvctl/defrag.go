package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kvd-io/kvd/pkg/client"
)

func newDefragCommand(g *globals) *cobra.Command {
	var cluster bool
	cmd := &cobra.Command{
		Use:     "defrag",
		Short:   "Compacts the database file of each member named by --endpoints",
		GroupID: groupCluster,
		Long: `Rewrites each member's database file without the pages freed by deletes and
compaction, one member after another. A kvd member keeps serving reads and
writes meanwhile; an etcd member stops serving until its defrag is done.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return eachEndpoint(g, cmd, &cluster, func(g *globals, eps []string, _ printer) error {
				return defragEndpoints(g, eps)
			})
		},
	}
	cmd.PersistentFlags().BoolVar(&cluster, "cluster", false, "defragment every member's client URLs, from the member list, instead of --endpoints")
	return cmd
}

// defragEndpoints defragments each endpoint in turn, whatever the output
// format, and reports each on its own line; any failure makes the exit
// status 1 once all were tried.
func defragEndpoints(g *globals, eps []string) error {
	failures := 0
	for _, ep := range eps {
		start := time.Now()
		_, err := askEndpoint(g, ep, func(c *client.Client) (*pb.DefragmentResponse, error) {
			ctx, cancel := g.commandCtx()
			defer cancel()
			return c.Defragment(ctx, ep)
		})
		took := time.Since(start)
		if err != nil {
			var ee *exitErr
			if errors.As(err, &ee) {
				return err
			}
			failures++
			fmt.Fprintf(g.stderr, "Failed to defragment etcd member[%s]. took %s. (%v)\n", ep, took, err)
			continue
		}
		fmt.Fprintf(g.stdout, "Finished defragmenting etcd member[%s]. took %s\n", ep, took)
	}
	if failures > 0 {
		return exitSilently(exitError)
	}
	return nil
}
