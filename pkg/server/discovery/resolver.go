// Package discovery finds the members of a new kvd cluster when they are
// not listed up front with --initial-cluster. It offers the two ways etcd
// bootstraps a cluster without a static list:
//
//   - DNS SRV discovery (--discovery-srv): the peers are the targets of the
//     _etcd-server-ssl._tcp and _etcd-server._tcp records of a domain.
//   - v3 discovery (--discovery-endpoints, --discovery-token): the members
//     register themselves in a running etcd-compatible cluster under
//     /_etcd/registry/<token>/ and wait until the expected number of them
//     has registered.
//
// Both end with a string in --initial-cluster form (name=url,...), which
// the server then bootstraps from as if it had been given that flag.
// Discovery is only for a member's first start: a member restarted from
// its data directory already knows its cluster.
package discovery

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// Resolver is the part of *net.Resolver that discovery needs, so tests
// can answer with fixed records.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
	LookupHost(ctx context.Context, host string) (addrs []string, err error)
}

// NewResolver returns the system resolver when server is empty. Otherwise
// it returns Go's own resolver sending every query to server ("host:port"),
// which lets a test, or an operator whose records live on a DNS server the
// system does not use, point discovery at that server.
func NewResolver(server string) Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
}

// resolveHost lists the IP addresses of host, in canonical form. An IP
// literal is its own answer and is not looked up.
func resolveHost(ctx context.Context, r Resolver, host string) ([]string, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []string{a.Unmap().String()}, nil
	}
	raw, err := r.LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve host %q: %w", host, err)
	}
	out := make([]string, 0, len(raw))
	for _, s := range raw {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a.Unmap().String())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolve host %q: no IP address", host)
	}
	return out, nil
}

// resolveHostPort lists every ip:port that host:port stands for.
func resolveHostPort(ctx context.Context, r Resolver, host, port string) ([]string, error) {
	ips, err := resolveHost(ctx, r, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip, port)
	}
	return out, nil
}
