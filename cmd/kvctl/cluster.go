package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/pkg/version"
)

func newMemberCommand(g *globals) *cobra.Command {
	member := &cobra.Command{Use: "member <subcommand>", Short: "Membership related commands"}
	member.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "Lists all members in the cluster",
		RunE: func(_ *cobra.Command, _ []string) error {
			return run(g, func(c *client.Client, p printer) error {
				ctx, cancel := g.ctx()
				defer cancel()
				resp, err := c.MemberList(ctx)
				if err != nil {
					return failWith(exitError, err)
				}
				return p.memberList(resp)
			})
		},
	})
	return member
}

func (p printer) memberList(r *pb.MemberListResponse) error {
	switch p.format {
	case "simple", "table":
		p.rows(memberRows(r))
	case "fields":
		p.fieldsHeader(r.Header)
		for _, m := range r.Members {
			if p.hex {
				fmt.Fprintf(p.out(), "\"ID\" : %x\n", m.ID)
			} else {
				fmt.Fprintln(p.out(), `"ID" :`, m.ID)
			}
			fmt.Fprintf(p.out(), "\"Name\" : %q\n", m.Name)
			for _, u := range m.PeerURLs {
				fmt.Fprintf(p.out(), "\"PeerURL\" : %q\n", u)
			}
			for _, u := range m.ClientURLs {
				fmt.Fprintf(p.out(), "\"ClientURL\" : %q\n", u)
			}
			fmt.Fprintln(p.out(), `"IsLearner" :`, m.IsLearner)
			fmt.Fprintln(p.out())
		}
	case "json":
		if p.hex {
			return p.json(hexMemberList(r))
		}
		return p.json(r)
	default:
		return p.message(r)
	}
	return nil
}

type hexHeader struct {
	ClusterID string `json:"cluster_id"`
	MemberID  string `json:"member_id"`
	Revision  int64  `json:"revision,omitempty"`
	RaftTerm  uint64 `json:"raft_term,omitempty"`
}

type hexMember struct {
	ID         string   `json:"ID"`
	Name       string   `json:"name,omitempty"`
	PeerURLs   []string `json:"peerURLs,omitempty"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

func hexMemberList(r *pb.MemberListResponse) any {
	h := r.GetHeader()
	out := struct {
		Header  *hexHeader   `json:"header"`
		Members []*hexMember `json:"members"`
	}{Header: &hexHeader{fmt.Sprintf("%x", h.GetClusterId()), fmt.Sprintf("%x", h.GetMemberId()), h.GetRevision(), h.GetRaftTerm()}}
	for _, m := range r.Members {
		out.Members = append(out.Members, &hexMember{fmt.Sprintf("%x", m.ID), m.Name, m.PeerURLs, m.ClientURLs, m.IsLearner})
	}
	return out
}

type epStatus struct {
	Ep   string             `json:"Endpoint"`
	Resp *pb.StatusResponse `json:"Status"`
}

type epHealth struct {
	Ep     string `json:"endpoint"`
	Health bool   `json:"health"`
	Took   string `json:"took"`
	Error  string `json:"error,omitempty"`
}

func newEndpointCommand(g *globals) *cobra.Command {
	var cluster bool
	ep := &cobra.Command{Use: "endpoint <subcommand>", Short: "Endpoint related commands"}
	ep.PersistentFlags().BoolVar(&cluster, "cluster", false, "use all endpoints from the cluster member list")
	ep.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Prints out the status of endpoints specified in `--endpoints` flag",
		RunE: func(_ *cobra.Command, _ []string) error {
			return run(g, func(c *client.Client, p printer) error { return endpointStatus(g, c, p, cluster) })
		},
	}, &cobra.Command{
		Use:   "health",
		Short: "Checks the healthiness of endpoints specified in `--endpoints` flag",
		RunE: func(_ *cobra.Command, _ []string) error {
			return run(g, func(c *client.Client, p printer) error { return endpointHealth(g, c, p, cluster) })
		},
	})
	return ep
}

// endpoints is --endpoints, or with --cluster every member's client URLs.
func endpoints(g *globals, c *client.Client, cluster bool) ([]string, error) {
	if !cluster {
		return g.endpoints, nil
	}
	ctx, cancel := g.ctx()
	defer cancel()
	resp, err := c.MemberList(ctx)
	if err != nil {
		return nil, failWith(exitError, err)
	}
	var eps []string
	for _, m := range resp.Members {
		eps = append(eps, m.ClientURLs...)
	}
	return eps, nil
}

func endpointStatus(g *globals, c *client.Client, p printer, cluster bool) error {
	eps, err := endpoints(g, c, cluster)
	if err != nil {
		return err
	}
	var list []epStatus
	failed := false
	for _, ep := range eps {
		ctx, cancel := g.ctx()
		resp, err := c.Status(ctx, ep)
		cancel()
		if err != nil {
			failed = true
			fmt.Fprintf(os.Stderr, "Failed to get the status of endpoint %s (%v)\n", ep, err)
			continue
		}
		list = append(list, epStatus{Ep: ep, Resp: resp})
	}
	if err := p.endpointStatus(list); err != nil {
		return err
	}
	if failed {
		os.Exit(exitError)
	}
	return nil
}

func (p printer) endpointStatus(list []epStatus) error {
	switch p.format {
	case "simple", "table":
		p.rows(statusRows(list))
	case "json":
		return p.json(list)
	case "fields":
		for _, s := range list {
			r := s.Resp
			p.fieldsHeader(r.Header)
			w := p.out()
			fmt.Fprintf(w, "\"Version\" : %q\n\"StorageVersion\" : %q\n", r.Version, r.StorageVersion)
			fmt.Fprintln(w, `"DBSize" :`, r.DbSize)
			fmt.Fprintln(w, `"DBSizeInUse" :`, r.DbSizeInUse)
			fmt.Fprintln(w, `"DBSizeQuota" :`, r.DbSizeQuota)
			fmt.Fprintln(w, `"Leader" :`, r.Leader)
			fmt.Fprintln(w, `"IsLearner" :`, r.IsLearner)
			fmt.Fprintln(w, `"RaftIndex" :`, r.RaftIndex)
			fmt.Fprintln(w, `"RaftAppliedIndex" :`, r.RaftAppliedIndex)
			fmt.Fprintln(w, `"Errors" :`, r.Errors)
			fmt.Fprintf(w, "\"Endpoint\" : %q\n", s.Ep)
			fmt.Fprintf(w, "\"DowngradeTargetVersion\" : %q\n", r.GetDowngradeInfo().GetTargetVersion())
			fmt.Fprintln(w, `"DowngradeEnabled" :`, r.GetDowngradeInfo().GetEnabled())
			fmt.Fprintln(w)
		}
	default:
		return p.unsupported()
	}
	return nil
}

// endpointHealth reads a key through each endpoint alone, as etcdctl does:
// a member that can serve a linearizable read is healthy.
func endpointHealth(g *globals, c *client.Client, p printer, cluster bool) error {
	eps, err := endpoints(g, c, cluster)
	if err != nil {
		return err
	}
	results := make([]epHealth, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = checkHealth(g, ep)
		}()
	}
	wg.Wait()
	if err := p.endpointHealth(results); err != nil {
		return err
	}
	for _, h := range results {
		if h.Error != "" {
			return fail(exitError, "unhealthy cluster")
		}
	}
	return nil
}

func checkHealth(g *globals, ep string) epHealth {
	c, err := client.New(client.Config{Endpoints: []string{ep}})
	if err != nil {
		return epHealth{Ep: ep, Error: err.Error()}
	}
	defer c.Close()
	start := time.Now()
	ctx, cancel := g.ctx()
	defer cancel()
	_, err = c.Get(ctx, "health")
	h := epHealth{Ep: ep, Took: time.Since(start).String()}
	if err != nil {
		h.Error = err.Error()
		return h
	}
	alarms, err := c.Alarms(ctx)
	switch {
	case err != nil:
		h.Error = "Unable to fetch the alarm list"
	case len(alarms) > 0:
		h.Error = "Active Alarm(s): "
		for _, a := range alarms {
			switch a.Alarm {
			case pb.AlarmType_NOSPACE:
				h.Error += "NOSPACE "
			case pb.AlarmType_CORRUPT:
				h.Error += "CORRUPT "
			default:
				h.Error += "UNKNOWN "
			}
		}
	default:
		h.Health = true
	}
	return h
}

func (p printer) endpointHealth(list []epHealth) error {
	switch p.format {
	case "simple":
		for _, h := range list {
			if h.Error == "" {
				fmt.Fprintf(p.out(), "%s is healthy: successfully committed proposal: took = %v\n", h.Ep, h.Took)
			} else {
				fmt.Fprintf(os.Stderr, "%s is unhealthy: failed to commit proposal: %v\n", h.Ep, h.Error)
			}
		}
	case "table":
		p.table(healthRows(list))
	case "json":
		return p.json(list)
	case "fields":
		for _, h := range list {
			fmt.Fprintf(p.out(), "\"Endpoint\" : %q\n", h.Ep)
			fmt.Fprintln(p.out(), `"Health" :`, h.Health)
			fmt.Fprintln(p.out(), `"Took" :`, h.Took)
			fmt.Fprintln(p.out(), `"Error" :`, h.Error)
			fmt.Fprintln(p.out())
		}
	default:
		return p.unsupported()
	}
	return nil
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Prints the version of kvctl",
		Run: func(*cobra.Command, []string) {
			fmt.Println("kvctl version:", version.Version)
			fmt.Println("API version:", version.APIVersion)
		},
	}
}
