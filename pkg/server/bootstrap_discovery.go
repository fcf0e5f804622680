package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kvd-io/kvd/pkg/server/discovery"
	"github.com/kvd-io/kvd/pkg/server/membership"
)

// errConflictingBootstrap is etcd's refusal of more than one way to
// bootstrap, in kvd's flag set.
var errConflictingBootstrap = errors.New(`multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery", "discovery-endpoints" or "discovery-srv"`)

// usesDiscovery reports whether a new member finds its cluster through
// discovery rather than --initial-cluster.
func (c *Config) usesDiscovery() bool {
	return c.DiscoverySRV != "" || len(c.DiscoveryEndpoints) > 0 || c.Discovery != ""
}

// validateDiscovery checks the discovery flags, which must come alone:
// as in etcd, --initial-cluster together with a discovery flag, or both
// kinds of discovery, is refused.
func (c *Config) validateDiscovery() error {
	ways := 0
	for _, set := range []bool{c.InitialCluster != "", c.DiscoverySRV != "", len(c.DiscoveryEndpoints) > 0, c.Discovery != ""} {
		if set {
			ways++
		}
	}
	if ways > 1 {
		return errConflictingBootstrap
	}
	if len(c.DiscoveryEndpoints) > 0 && c.DiscoveryToken == "" {
		return errors.New("--discovery-token must be set with --discovery-endpoints")
	}
	if c.DiscoveryToken != "" && len(c.DiscoveryEndpoints) == 0 {
		return errors.New("--discovery-token needs --discovery-endpoints")
	}
	if c.DiscoverySRVName != "" && c.DiscoverySRV == "" {
		return errors.New("--discovery-srv-name needs --discovery-srv")
	}
	if c.DiscoveryDialTimeout < 0 || c.DiscoveryRequestTimeout < 0 {
		return errors.New("--discovery-dial-timeout and --discovery-request-timeout must not be negative")
	}
	return c.validateDiscoveryURL()
}

// validateDiscoveryURL checks --discovery and the flags that go with it,
// and those of the discovery service.
func (c *Config) validateDiscoveryURL() error {
	if c.Discovery != "" {
		if _, err := discovery.ParseURL(c.Discovery); err != nil {
			return fmt.Errorf("--discovery: %w", err)
		}
	}
	if c.DiscoveryProxy != "" && c.Discovery == "" {
		return errors.New("--discovery-proxy needs --discovery")
	}
	switch c.DiscoveryFallback {
	case "", "exit":
	case "proxy":
		return errors.New(`--discovery-fallback=proxy: kvd has no proxy mode; a member whose discovery fails exits ("exit")`)
	default:
		return fmt.Errorf("--discovery-fallback %q: want 'exit'", c.DiscoveryFallback)
	}
	if c.EnableDiscoveryService && c.DiscoveryTokenTTL < time.Second {
		return fmt.Errorf("--discovery-token-ttl %v: want at least a second", c.DiscoveryTokenTTL)
	}
	return nil
}

func (c *Config) resolver() discovery.Resolver {
	return discovery.NewResolver(c.DiscoveryDNSServer)
}

// resolveInitialCluster fills InitialCluster from discovery when a
// discovery flag is set, for a member's first start only. With v3
// discovery the token also becomes the cluster token, as in etcd, so the
// member registers under the ID it will have: the one derived from its
// peer URLs and that token.
func (c *Config) resolveInitialCluster(ctx context.Context) error {
	switch {
	case c.DiscoverySRV != "":
		s, err := discovery.SRVCluster(ctx, c.resolver(), discovery.SRVConfig{
			Domain:            c.DiscoverySRV,
			ServiceName:       c.DiscoverySRVName,
			Name:              c.Name,
			AdvertisePeerURLs: c.InitialAdvertisePeerURLs,
		})
		if err != nil {
			return fmt.Errorf("--discovery-srv %s: %w", c.DiscoverySRV, err)
		}
		c.Logger.Info("initial cluster from DNS SRV discovery", "domain", c.DiscoverySRV, "initial-cluster", s)
		c.InitialCluster = s
	case len(c.DiscoveryEndpoints) > 0:
		self, err := membership.ParseInitialCluster(initialClusterOf(c.Name, c.InitialAdvertisePeerURLs), c.DiscoveryToken)
		if err != nil {
			return fmt.Errorf("v3 discovery: %w", err)
		}
		s, err := discovery.JoinV3(ctx, discovery.V3Config{
			Endpoints:   c.DiscoveryEndpoints,
			Token:       c.DiscoveryToken,
			DialTimeout: c.DiscoveryDialTimeout,
			Joiner:      c.joiner(self[0]),
		})
		if err != nil {
			return fmt.Errorf("v3 discovery at %v: %w", c.DiscoveryEndpoints, err)
		}
		c.Logger.Info("initial cluster from v3 discovery", "token", c.DiscoveryToken, "initial-cluster", s)
		c.InitialCluster = s
		c.InitialClusterToken = c.DiscoveryToken
	case c.Discovery != "":
		return c.joinDiscoveryURL(ctx)
	}
	return nil
}

// joinDiscoveryURL bootstraps from --discovery. As in etcd, the URL is
// also the cluster token, so member and cluster IDs come out as an etcd
// member started with the same flags would compute them.
func (c *Config) joinDiscoveryURL(ctx context.Context) error {
	self, err := membership.ParseInitialCluster(initialClusterOf(c.Name, c.InitialAdvertisePeerURLs), c.Discovery)
	if err != nil {
		return fmt.Errorf("--discovery: %w", err)
	}
	s, err := discovery.JoinURL(ctx, discovery.URLConfig{
		URL:    c.Discovery,
		Proxy:  c.DiscoveryProxy,
		Joiner: c.joiner(self[0]),
	})
	if err != nil {
		return fmt.Errorf("--discovery %s: %w", c.Discovery, err)
	}
	c.Logger.Info("initial cluster from the discovery URL", "url", c.Discovery, "initial-cluster", s)
	c.InitialCluster = s
	c.InitialClusterToken = c.Discovery
	return nil
}

// advertisedPeerURLsMatch reports whether the cluster lists this member
// with its advertised peer URLs. Equal strings match at once; otherwise
// host names are resolved, as etcd does, since DNS discovery lists a
// member under its SRV target name while it may advertise an address.
func (c *Config) advertisedPeerURLsMatch(ctx context.Context, listed []string) error {
	advertised := normalizeURLs(c.InitialAdvertisePeerURLs)
	if slices.Equal(sortedCopy(listed), advertised) {
		return nil
	}
	same, err := discovery.SamePeerURLs(ctx, c.resolver(), listed, advertised)
	if err != nil {
		return fmt.Errorf("compare the initial cluster's %s=%v with --initial-advertise-peer-urls %v: %w", c.Name, listed, advertised, err)
	}
	if !same {
		return fmt.Errorf("--initial-cluster has %s=%v but --initial-advertise-peer-urls is %v", c.Name, listed, advertised)
	}
	return nil
}

// joiner describes this member, self as --initial-cluster would list it,
// to a discovery service.
func (c *Config) joiner(self *membership.Member) discovery.Joiner {
	return discovery.Joiner{Name: c.Name, PeerURLs: self.PeerURLs, MemberID: self.ID,
		RequestTimeout: c.DiscoveryRequestTimeout, Logger: c.Logger}
}
