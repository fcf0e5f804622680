package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/client"
)

func newEndpointCommand(g *globals) *cobra.Command {
	var cluster bool
	var hashRev int64
	ep := &cobra.Command{
		Use:     "endpoint <subcommand>",
		Short:   "Commands about each endpoint on its own",
		GroupID: groupCluster,
	}
	ep.PersistentFlags().BoolVar(&cluster, "cluster", false, "ask every member's client URLs, from the member list, instead of --endpoints")
	health := &cobra.Command{
		Use:   "health",
		Short: "Checks that each endpoint serves a linearizable read and has no alarm",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return eachEndpoint(g, cmd, &cluster, endpointHealth)
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Prints each endpoint's version, database size and raft state",
		Long: `Prints each endpoint's status. The simple format prints one comma-separated
line per endpoint, in the columns of the table format.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return eachEndpoint(g, cmd, &cluster, endpointStatus)
		},
	}
	hashkv := &cobra.Command{
		Use:   "hashkv",
		Short: "Prints each endpoint's hash of its key-value history",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return eachEndpoint(g, cmd, &cluster, func(g *globals, eps []string, p printer) error {
				return endpointHashKV(g, eps, p, hashRev)
			})
		},
	}
	hashkv.PersistentFlags().Int64Var(&hashRev, "rev", 0, "hash the history up to this revision (0: the latest)")
	ep.AddCommand(health, status, hashkv)
	return ep
}

// eachEndpoint prepares the globals, settles the endpoints to ask (all
// members' with --cluster, read after the environment could set it), and
// runs fn on them.
func eachEndpoint(g *globals, cmd *cobra.Command, cluster *bool, fn func(*globals, []string, printer) error) error {
	p, err := g.prepare(cmd)
	if err != nil {
		return err
	}
	eps := g.eps
	if *cluster { // read after prepare: ETCDCTL_CLUSTER may set it
		if eps, err = clusterEndpoints(g); err != nil {
			return err
		}
	}
	return fn(g, eps, p)
}

// clusterEndpoints is every member's client URLs.
func clusterEndpoints(g *globals) ([]string, error) {
	c, err := g.connect(nil)
	if err != nil {
		return nil, failWith(exitError, errors.Unwrap(err))
	}
	defer c.Close()
	ctx, cancel := g.commandCtx()
	defer cancel()
	resp, err := c.MemberList(ctx)
	if err != nil {
		return nil, fail(exitError, "failed to fetch endpoints from etcd cluster member list: %w", err)
	}
	var eps []string
	for _, m := range resp.Members {
		eps = append(eps, m.ClientURLs...)
	}
	return eps, nil
}

// endpointStatus asks each endpoint in turn. Endpoints that fail are
// reported on stderr and left out; the command then exits 1 without a
// further message.
func endpointStatus(g *globals, eps []string, p printer) error {
	var list []epStatus
	failed := false
	for _, ep := range eps {
		resp, err := askEndpoint(g, ep, func(c *client.Client) (*pb.StatusResponse, error) {
			ctx, cancel := g.commandCtx()
			defer cancel()
			return c.Status(ctx, ep)
		})
		if err != nil {
			var ee *exitErr
			if errors.As(err, &ee) {
				return err
			}
			failed = true
			fmt.Fprintf(g.stderr, "Failed to get the status of endpoint %s (%v)\n", ep, err)
			continue
		}
		list = append(list, epStatus{Ep: ep, Resp: resp})
	}
	if err := p.EndpointStatus(list); err != nil {
		return err
	}
	if failed {
		return exitSilently(exitError)
	}
	return nil
}

// endpointHashKV asks each endpoint in turn; the last failure ends the
// command after the others are printed.
func endpointHashKV(g *globals, eps []string, p printer, rev int64) error {
	var list []epHashKV
	var lastErr error
	for _, ep := range eps {
		resp, err := askEndpoint(g, ep, func(c *client.Client) (*pb.HashKVResponse, error) {
			ctx, cancel := g.commandCtx()
			defer cancel()
			return c.HashKV(ctx, ep, rev)
		})
		if err != nil {
			var ee *exitErr
			if errors.As(err, &ee) {
				return err
			}
			lastErr = err
			fmt.Fprintf(g.stderr, "Failed to get the hash of endpoint %s (%v)\n", ep, err)
			continue
		}
		list = append(list, epHashKV{Ep: ep, Resp: resp})
	}
	if err := p.EndpointHashKV(list); err != nil {
		return err
	}
	if lastErr != nil {
		return failWith(exitError, lastErr)
	}
	return nil
}

// askEndpoint runs call with a client of its own for ep. Failing to
// create the client is an *exitErr that ends the command.
func askEndpoint[R any](g *globals, ep string, call func(*client.Client) (R, error)) (R, error) {
	var zero R
	c, err := g.connect([]string{ep})
	if err != nil {
		return zero, err
	}
	defer c.Close()
	return call(c)
}

// endpointHealth checks every endpoint at once: a member is healthy when
// it serves a linearizable read (permission denied counts: the read went
// through consensus) and has no active alarm. Results are printed in the
// order they came in.
func endpointHealth(g *globals, eps []string, p printer) error {
	results := make(chan epHealth, len(eps))
	var wg sync.WaitGroup
	for _, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- checkHealth(g, ep)
		}()
	}
	wg.Wait()
	close(results)
	var list []epHealth
	unhealthy := false
	for h := range results {
		list = append(list, h)
		unhealthy = unhealthy || h.Error != ""
	}
	if err := p.EndpointHealth(list); err != nil {
		return err
	}
	if unhealthy {
		return fail(exitError, "unhealthy cluster")
	}
	return nil
}

func checkHealth(g *globals, ep string) epHealth {
	cfg, err := g.clientConfig([]string{ep})
	if err != nil {
		return epHealth{Ep: ep, Error: err.Error()}
	}
	c, err := client.New(cfg)
	if err != nil {
		return epHealth{Ep: ep, Error: err.Error()}
	}
	defer c.Close()
	ctx, cancel := g.commandCtx()
	defer cancel()
	start := time.Now()
	_, err = c.Get(ctx, "health")
	h := epHealth{Ep: ep, Took: time.Since(start).String()}
	if err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
		h.Error = err.Error()
		return h
	}
	alarms, err := c.AlarmList(ctx)
	switch {
	case err != nil:
		h.Error = "Unable to fetch the alarm list"
	case len(alarms.Alarms) > 0:
		var sb strings.Builder
		sb.WriteString("Active Alarm(s): ")
		for _, a := range alarms.Alarms {
			switch a.Alarm {
			case pb.AlarmType_NOSPACE, pb.AlarmType_CORRUPT:
				sb.WriteString(a.Alarm.String() + " ")
			default:
				sb.WriteString("UNKNOWN ")
			}
		}
		h.Error = sb.String()
	default:
		h.Health = true
	}
	return h
}
