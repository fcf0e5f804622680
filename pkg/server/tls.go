package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/kvd-io/kvd/pkg/server/api"
	"github.com/kvd-io/kvd/pkg/server/tlsinfo"
)

// validateTLS checks the TLS versions and cipher suites and gives them to
// both sides, as etcd's --cipher-suites and --tls-*-version apply to
// client and peer connections alike.
func (c *Config) validateTLS() error {
	minV, err := tlsinfo.ParseVersion(c.TLSMinVersion)
	if err != nil {
		return err
	}
	maxV, err := tlsinfo.ParseVersion(c.TLSMaxVersion)
	if err != nil {
		return err
	}
	if maxV != 0 && minV > maxV {
		return fmt.Errorf("min version (%s) is greater than max version (%s)", c.TLSMinVersion, c.TLSMaxVersion)
	}
	if minV == tls.VersionTLS13 && len(c.CipherSuites) > 0 {
		return errors.New("cipher suites cannot be configured when only TLS1.3 is enabled")
	}
	suites, err := tlsinfo.ParseCipherSuites(c.CipherSuites)
	if err != nil {
		return err
	}
	for _, info := range []*tlsinfo.Info{&c.ClientTLS, &c.PeerTLS} {
		info.MinVersion, info.MaxVersion = minV, maxV
		if len(suites) > 0 {
			info.CipherSuites = suites
		}
	}
	if c.SelfSignedCertValidity == 0 {
		// A Config made in code may leave it out.
		c.SelfSignedCertValidity = 1
	}
	return nil
}

// tlsSetup is what the member's listeners and peer clients secure
// themselves with; a nil config means that side has no certificate.
type tlsSetup struct {
	client     *tls.Config // client and https metrics listeners
	peerServer *tls.Config
	// peerHTTP carries every request this member makes to a peer's URL
	// (membership, forwarded changes, leases, hashes); peerClient is its
	// TLS configuration, for the raft streams.
	peerClient *tls.Config
	peerHTTP   *http.Transport
}

// setupTLS makes the --auto-tls pairs if asked, checks every https URL
// has a certificate to serve, and builds the TLS configurations.
func (s *Server) setupTLS() error {
	c := &s.cfg
	var err error
	if c.ClientTLS, err = s.autoTLS("client", c.ClientAutoTLS, c.ClientTLS, c.ListenClientURLs); err != nil {
		return err
	}
	if c.PeerTLS, err = s.autoTLS("peer", c.PeerAutoTLS, c.PeerTLS, c.ListenPeerURLs); err != nil {
		return err
	}
	for _, raw := range c.ListenClientURLs {
		if isHTTPS(raw) && c.ClientTLS.Empty() {
			return fmt.Errorf("TLS key/cert (--cert-file, --key-file) must be provided for client url %s with HTTPS scheme", raw)
		}
		if !isHTTPS(raw) && !c.ClientTLS.Empty() {
			s.lg.Warn("scheme is http while key and cert files are present; ignoring key and cert files", "client-url", raw)
		}
	}
	for _, raw := range c.ListenMetricsURLs {
		if isHTTPS(raw) && c.ClientTLS.Empty() {
			return errors.New("client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url")
		}
	}
	for _, raw := range c.ListenPeerURLs {
		if isHTTPS(raw) && c.PeerTLS.Empty() {
			u, _ := url.Parse(raw)
			return fmt.Errorf("cannot listen on TLS for %s: KeyFile and CertFile are not presented", u.Host)
		}
		if !isHTTPS(raw) && !c.PeerTLS.Empty() {
			s.lg.Warn("scheme is http while key and cert files are present; ignoring key and cert files", "peer-url", raw)
		}
	}
	if !c.ClientTLS.Empty() {
		base, err := c.ClientTLS.ServerConfig()
		if err != nil {
			return fmt.Errorf("client TLS: %w", err)
		}
		s.tls.client = api.ServerTLS(base)
		s.lg.Info("starting with client TLS", "cert-file", c.ClientTLS.CertFile, "trusted-ca-file", c.ClientTLS.TrustedCAFile, "client-cert-auth", c.ClientTLS.ClientCertAuth)
	}
	if !c.PeerTLS.Empty() {
		if s.tls.peerServer, err = c.PeerTLS.ServerConfig(); err != nil {
			return fmt.Errorf("peer TLS: %w", err)
		}
		s.lg.Info("starting with peer TLS", "cert-file", c.PeerTLS.CertFile, "trusted-ca-file", c.PeerTLS.TrustedCAFile, "peer-client-cert-auth", c.PeerTLS.ClientCertAuth)
	}
	if s.tls.peerClient, err = c.PeerTLS.ClientConfig(); err != nil {
		return fmt.Errorf("peer TLS: %w", err)
	}
	s.tls.peerHTTP = &http.Transport{
		TLSClientConfig:     s.tls.peerClient,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     time.Minute,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return nil
}

// autoTLS returns the self-signed pair of --auto-tls (side "client") or
// --peer-auto-tls ("peer") under the data dir when asked and no
// certificate is given, otherwise info unchanged. As in etcd, the pair
// replaces the side's settings but for versions and cipher suites.
func (s *Server) autoTLS(side string, auto bool, info tlsinfo.Info, listenURLs []string) (tlsinfo.Info, error) {
	if !auto {
		return info, nil
	}
	if !info.Empty() {
		s.lg.Warn("ignoring " + side + " auto TLS since certs given")
		return info, nil
	}
	hosts := make([]string, 0, len(listenURLs))
	for _, raw := range listenURLs {
		if u, err := url.Parse(raw); err == nil {
			hosts = append(hosts, u.Host)
		}
	}
	self, err := tlsinfo.SelfCert(filepath.Join(s.cfg.DataDir, "fixtures", side), hosts, s.cfg.SelfSignedCertValidity)
	if err != nil {
		return info, fmt.Errorf("generate %s self-signed certificate: %w", side, err)
	}
	self.MinVersion, self.MaxVersion, self.CipherSuites = info.MinVersion, info.MaxVersion, info.CipherSuites
	s.lg.Warn("automatically generated a self-signed certificate", "side", side, "cert-file", self.CertFile)
	return self, nil
}

func isHTTPS(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https"
}

// peerClient is an HTTP client for requests to peers, bounded by timeout
// when it is not zero.
func (s *Server) peerClient(timeout time.Duration) *http.Client {
	return &http.Client{Transport: s.tls.peerHTTP, Timeout: timeout}
}
