package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// SRVConfig says where to look for the peers of a new cluster in DNS and
// how this member recognises itself among them.
type SRVConfig struct {
	// Domain is --discovery-srv.
	Domain string
	// ServiceName is --discovery-srv-name: when set, the records looked up
	// are _etcd-server-ssl-<name>._tcp and _etcd-server-<name>._tcp.
	ServiceName string
	// Name is this member's --name; AdvertisePeerURLs are its
	// --initial-advertise-peer-urls.
	Name              string
	AdvertisePeerURLs []string
}

// Peer is one member of the cluster found in DNS: a peer URL made of an
// SRV record's target and port, and the name that goes with it.
type Peer struct {
	Name string
	URL  string
	// Self is true for the URLs that are this member's own.
	Self bool
}

// Target is one SRV record: https for the -ssl service, http otherwise.
type Target struct {
	Scheme string
	// Host is the record's target without the trailing dot DNS gives it.
	Host string
	Port uint16
}

// URL is the peer URL the record stands for.
func (t Target) URL() string {
	return t.Scheme + "://" + net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port)))
}

// ServerService is the SRV service name (without its leading underscore,
// as net.LookupSRV takes it) under which etcd looks for the peers of a
// cluster: etcd-server, with -ssl for https and -<name> when a service
// name is given.
func ServerService(scheme, serviceName string) string {
	s := "etcd-server"
	if scheme == "https" {
		s += "-ssl"
	}
	if serviceName != "" {
		s += "-" + serviceName
	}
	return s
}

// Targets looks up both the https and the http records of domain. A
// failed lookup of one kind is not an error when the other found records,
// as in etcd, where a cluster usually publishes only one of them.
func Targets(ctx context.Context, r Resolver, domain, serviceName string) ([]Target, error) {
	if domain == "" {
		return nil, errors.New("discovery: no SRV domain given")
	}
	var (
		out  []Target
		errs []error
	)
	for _, scheme := range []string{"https", "http"} {
		service := ServerService(scheme, serviceName)
		_, records, err := r.LookupSRV(ctx, service, "tcp", domain)
		if err != nil {
			errs = append(errs, fmt.Errorf("look up SRV _%s._tcp.%s: %w", service, domain, err))
		}
		// Go may return good records together with an error about bad
		// ones, so the records are kept either way.
		found := make([]Target, 0, len(records))
		for _, rec := range records {
			found = append(found, Target{Scheme: scheme, Host: strings.TrimSuffix(rec.Target, "."), Port: rec.Port})
		}
		// The resolver shuffles records of equal priority; a fixed order
		// makes the names given to other members the same on every start.
		slices.SortFunc(found, func(a, b Target) int {
			return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port))
		})
		out = append(out, found...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("discovery: no SRV records for the peers of %s: %w", domain, errors.Join(errs...))
	}
	return out, nil
}

// SRV finds the peers of a new cluster in DNS and names them as etcd
// does. A target that resolves to the same address and port as one of
// this member's advertised peer URLs is this member and gets its name;
// every other target is named by a counter ("0", "1", ...), since DNS does
// not say what the other members are called. The peer URL of each is the
// target host name and port, not the address it resolved to.
//
// Unlike etcd, which counts the https and the http records separately and
// so could give two members the same placeholder, one counter runs over
// both.
func SRV(ctx context.Context, r Resolver, cfg SRVConfig) ([]Peer, error) {
	if cfg.Name == "" {
		return nil, errors.New("discovery: member name is empty")
	}
	own, err := ownAddresses(ctx, r, cfg.AdvertisePeerURLs)
	if err != nil {
		return nil, err
	}
	targets, err := Targets(ctx, r, cfg.Domain, cfg.ServiceName)
	if err != nil {
		return nil, err
	}
	var (
		peers []Peer
		errs  []error
		next  int
		seen  = map[string]bool{}
		self  bool
	)
	for _, t := range targets {
		u := t.URL()
		if seen[u] {
			continue
		}
		seen[u] = true
		addrs, err := resolveHostPort(ctx, r, t.Host, strconv.Itoa(int(t.Port)))
		if err != nil {
			errs = append(errs, fmt.Errorf("SRV target %s: %w", u, err))
			continue
		}
		mine, isMine := matchOwn(own, addrs)
		if isMine && mine.Scheme != t.Scheme {
			errs = append(errs, fmt.Errorf("SRV target %s is this member's %s but the schemes differ", u, mine))
			continue
		}
		p := Peer{URL: u, Self: isMine}
		if isMine {
			p.Name, self = cfg.Name, true
		} else {
			p.Name = strconv.Itoa(next)
			next++
		}
		peers = append(peers, p)
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("discovery: no usable SRV target in %s: %w", cfg.Domain, errors.Join(errs...))
	}
	if !self {
		return nil, fmt.Errorf("discovery: cannot find local member %q (peer URLs %v) in the SRV records of %s: %w",
			cfg.Name, cfg.AdvertisePeerURLs, cfg.Domain, errors.Join(errs...))
	}
	return peers, nil
}

// SRVCluster is SRV's answer as an --initial-cluster string.
func SRVCluster(ctx context.Context, r Resolver, cfg SRVConfig) (string, error) {
	peers, err := SRV(ctx, r, cfg)
	if err != nil {
		return "", err
	}
	return InitialCluster(peers), nil
}

// InitialCluster writes peers as name=url pairs separated by commas.
func InitialCluster(peers []Peer) string {
	parts := make([]string, len(peers))
	for i, p := range peers {
		parts[i] = p.Name + "=" + p.URL
	}
	return strings.Join(parts, ",")
}

// ownAddresses maps every ip:port this member's peer URLs resolve to onto
// the URL it came from.
func ownAddresses(ctx context.Context, r Resolver, urls []string) (map[string]*url.URL, error) {
	if len(urls) == 0 {
		return nil, errors.New("discovery: member has no advertised peer URL")
	}
	own := map[string]*url.URL{}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("discovery: advertised peer URL %q is not a URL with a host", raw)
		}
		port := u.Port()
		if port == "" {
			return nil, fmt.Errorf("discovery: advertised peer URL %q has no port", raw)
		}
		addrs, err := resolveHostPort(ctx, r, u.Hostname(), port)
		if err != nil {
			return nil, fmt.Errorf("discovery: advertised peer URL %q: %w", raw, err)
		}
		for _, a := range addrs {
			own[a] = u
		}
	}
	return own, nil
}

func matchOwn(own map[string]*url.URL, addrs []string) (*url.URL, bool) {
	for _, a := range addrs {
		if u, ok := own[a]; ok {
			return u, true
		}
	}
	return nil, false
}

// SamePeerURLs reports whether two lists of peer URLs name the same
// endpoints once host names are resolved, as etcd compares a member's
// advertised URLs with those the cluster lists for it: the schemes must
// match and every URL of each list must share an address with one of the
// other's.
func SamePeerURLs(ctx context.Context, r Resolver, a, b []string) (bool, error) {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b), nil
	}
	ra, err := resolvedURLs(ctx, r, a)
	if err != nil {
		return false, err
	}
	rb, err := resolvedURLs(ctx, r, b)
	if err != nil {
		return false, err
	}
	return covers(ra, rb) && covers(rb, ra), nil
}

type resolvedURL struct {
	scheme string
	addrs  []string
}

func resolvedURLs(ctx context.Context, r Resolver, urls []string) ([]resolvedURL, error) {
	out := make([]resolvedURL, 0, len(urls))
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Port() == "" {
			return nil, fmt.Errorf("peer URL %q is not a URL with host and port", raw)
		}
		addrs, err := resolveHostPort(ctx, r, u.Hostname(), u.Port())
		if err != nil {
			return nil, fmt.Errorf("peer URL %q: %w", raw, err)
		}
		out = append(out, resolvedURL{scheme: u.Scheme, addrs: addrs})
	}
	return out, nil
}

// covers reports whether every URL of a has a counterpart in b.
func covers(a, b []resolvedURL) bool {
	for _, x := range a {
		found := false
		for _, y := range b {
			if x.scheme == y.scheme && slices.ContainsFunc(x.addrs, func(s string) bool { return slices.Contains(y.addrs, s) }) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
