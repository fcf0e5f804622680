package tlsinfo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"time"
)

// withSANCheck makes cfg refuse a caller's certificate that names hosts
// (IP addresses or DNS names) none of which is the address the
// connection comes from. The address is known only per connection, so
// each handshake gets its own copy of cfg.
func withSANCheck(cfg *tls.Config) {
	base := cfg.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		remote := hello.Conn.RemoteAddr().String()
		prev := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if prev != nil {
				if err := prev(cs); err != nil {
					return err
				}
			}
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			return checkSAN(hello.Context(), cs.PeerCertificates[0], remote)
		}
		return c, nil
	}
}

// checkSAN is etcd's rule: a certificate without IP addresses and DNS
// names passes; otherwise one of its IP addresses must be the remote
// host, or one of its DNS names must resolve to it.
func checkSAN(ctx context.Context, cert *x509.Certificate, remote string) error {
	if len(cert.IPAddresses) == 0 && len(cert.DNSNames) == 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return err
	}
	if len(cert.IPAddresses) > 0 {
		err := cert.VerifyHostname(host)
		if err == nil || len(cert.DNSNames) == 0 {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var lookupErr error
	for _, name := range cert.DNSNames {
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		if err != nil {
			lookupErr = err
			continue
		}
		if slices.Contains(addrs, host) {
			return nil
		}
	}
	if lookupErr != nil {
		return fmt.Errorf("tls: %q does not match any of DNSNames %q (%v)", host, cert.DNSNames, lookupErr)
	}
	return fmt.Errorf("tls: %q does not match any of DNSNames %q", host, cert.DNSNames)
}
