package client

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
)

// resolverScheme names the client's own resolver: it hands gRPC the
// endpoint list, and gRPC's round_robin balancer spreads calls over it.
const resolverScheme = "kvd-endpoints"

// Endpoint is one parsed client URL.
type Endpoint struct {
	// Host is the host:port gRPC dials.
	Host string
	// Secure says the endpoint wants TLS (https://).
	Secure bool
}

// ParseEndpoint reads host:port, http://host:port or https://host:port.
func ParseEndpoint(ep string) (Endpoint, error) {
	ep = strings.TrimSpace(ep)
	if !strings.Contains(ep, "://") {
		if ep == "" {
			return Endpoint{}, fmt.Errorf("client: empty endpoint")
		}
		return Endpoint{Host: ep}, nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return Endpoint{}, fmt.Errorf("client: endpoint %q: %w", ep, err)
	}
	switch u.Scheme {
	case "http":
		return Endpoint{Host: u.Host}, nil
	case "https":
		return Endpoint{Host: u.Host, Secure: true}, nil
	}
	return Endpoint{}, fmt.Errorf("client: endpoint %q: unsupported scheme %q", ep, u.Scheme)
}

// resolve turns endpoints into the resolver's address list. Mixing plain
// and TLS endpoints is refused: one connection has one kind of transport.
func resolve(eps []string) (resolver.State, bool, error) {
	var state resolver.State
	secure := false
	for i, raw := range eps {
		ep, err := ParseEndpoint(raw)
		if err != nil {
			return state, false, err
		}
		if i > 0 && ep.Secure != secure {
			return state, false, fmt.Errorf("client: endpoints mix http and https: %v", eps)
		}
		secure = ep.Secure
		// The host names the server: the :authority of its calls and the
		// name its TLS certificate must carry.
		addr := resolver.Address{Addr: ep.Host, ServerName: ep.Host}
		if host, _, err := net.SplitHostPort(ep.Host); err == nil {
			addr.ServerName = host
		}
		state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr}})
	}
	return state, secure, nil
}

// transportCredentials is TLS when configured or asked for by https://
// endpoints, plain text otherwise.
func (c *Client) transportCredentials() credentials.TransportCredentials {
	if !c.secure {
		return insecure.NewCredentials()
	}
	cfg := c.cfg.TLS
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return credentials.NewTLS(cfg)
}
