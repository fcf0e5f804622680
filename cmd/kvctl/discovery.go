package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// newDiscoveryCommand is kvd's own: it asks a cluster started with
// --enable-discovery-service for a discovery URL, as `curl .../new?size=N`
// does.
func newDiscoveryCommand(g *globals) *cobra.Command {
	disc := &cobra.Command{
		Use:     "discovery <subcommand>",
		Short:   "Discovery URL related commands (kvd only)",
		GroupID: groupCluster,
	}
	var size int
	create := &cobra.Command{
		Use:   "new",
		Short: "Creates a discovery URL for a new cluster of --size members (kvd only)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if size <= 0 {
				return failWith(exitBadArgs, fmt.Errorf("--size must be a positive whole number, not %d", size))
			}
			if _, err := g.prepare(cmd); err != nil {
				return err
			}
			u, err := g.newDiscoveryURL(size)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, u)
			return nil
		},
	}
	create.Flags().IntVar(&size, "size", 3, "number of members of the new cluster")
	disc.AddCommand(create)
	return disc
}

// newDiscoveryURL asks the endpoints in turn until one answers.
func (g *globals) newDiscoveryURL(size int) (string, error) {
	tlsCfg, err := g.tlsConfig()
	if err != nil {
		return "", failWith(exitBadArgs, err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	var errs []error
	for _, ep := range g.eps {
		scheme := "http"
		if tlsCfg != nil || strings.HasPrefix(ep, "https://") {
			scheme = "https"
		}
		host := ep
		if _, rest, ok := strings.Cut(ep, "://"); ok {
			host = rest
		}
		ctx, cancel := g.commandCtx()
		body, status, err := getBody(ctx, hc, scheme+"://"+host+"/new?size="+strconv.Itoa(size))
		cancel()
		switch {
		case err != nil:
			errs = append(errs, err)
		case status == http.StatusOK:
			return body, nil
		case status == http.StatusNotFound:
			return "", failWith(exitError, fmt.Errorf("%s serves no discovery URLs (start it with --enable-discovery-service)", host))
		default:
			return "", failWith(exitError, fmt.Errorf("%s: %s", host, strings.TrimSpace(body)))
		}
	}
	return "", failWith(exitBadConnection, errors.Join(errs...))
}

func getBody(ctx context.Context, hc *http.Client, u string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return string(b), resp.StatusCode, err
}
