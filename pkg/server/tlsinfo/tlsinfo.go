// Package tlsinfo turns etcd's TLS flags (--cert-file, --trusted-ca-file,
// --client-cert-auth, --peer-*, --cipher-suites, --tls-min-version, ...)
// into crypto/tls configurations for the member's listeners and for the
// connections it opens to its peers.
//
// Certificates and keys are not loaded once: every handshake asks for the
// pair on disk, which is parsed again only when one of its files changed,
// so a renewed certificate is served without a restart, as etcd does.
// The trusted CA bundle is read once, when the configuration is built.
package tlsinfo

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// Info is one side's TLS settings (clients' or peers'), named after
// etcd's flags.
type Info struct {
	CertFile, KeyFile string
	// ClientCertFile and ClientKeyFile, when set, are presented when this
	// member dials out instead of CertFile and KeyFile.
	ClientCertFile, ClientKeyFile string
	TrustedCAFile                 string
	// ClientCertAuth requires callers to present a certificate signed by
	// the trusted CA. As in etcd, a trusted CA file alone requires it too.
	ClientCertAuth bool
	// CRLFile lists revoked certificates, refused at each handshake.
	CRLFile string
	// AllowedCNs, when not empty, are the only common names a caller's
	// certificate may carry.
	AllowedCNs []string
	// CheckClientSAN refuses a caller's certificate whose IP addresses
	// and DNS names, when it has any, do not match the address the
	// connection comes from: etcd's check of peers, which
	// --peer-skip-client-san-verification turns off.
	CheckClientSAN bool
	CipherSuites   []uint16
	// MinVersion 0 means TLS 1.2; MaxVersion 0 lets Go choose.
	MinVersion, MaxVersion uint16
	// SelfSigned marks a pair made by SelfCert: nobody can verify it, so
	// this member's own outgoing connections skip verification.
	SelfSigned bool
}

// Empty says no certificate is configured.
func (i Info) Empty() bool { return i.CertFile == "" && i.KeyFile == "" }

// ServerConfig is the configuration of a listener serving this side.
func (i Info) ServerConfig() (*tls.Config, error) {
	cfg, err := i.base()
	if err != nil {
		return nil, err
	}
	pair := newKeyPair(i.CertFile, i.KeyFile)
	if _, err := pair.get(); err != nil {
		return nil, err
	}
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return pair.get() }
	if i.TrustedCAFile != "" || i.ClientCertAuth {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if i.TrustedCAFile != "" {
		if cfg.ClientCAs, err = loadPool(i.TrustedCAFile); err != nil {
			return nil, err
		}
	}
	if len(i.AllowedCNs) > 0 {
		allowed := slices.Clone(i.AllowedCNs)
		cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
			for _, chain := range chains {
				if len(chain) > 0 && slices.Contains(allowed, chain[0].Subject.CommonName) {
					return nil
				}
			}
			return errors.New("client certificate authentication failed")
		}
	}
	if i.CRLFile != "" {
		crl := i.CRLFile
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return checkCRL(crl, cs.PeerCertificates) }
	}
	if i.CheckClientSAN {
		withSANCheck(cfg)
	}
	return cfg, nil
}

// ClientConfig is the configuration of connections this member opens to
// servers of this side (its peers).
func (i Info) ClientConfig() (*tls.Config, error) {
	cfg, err := i.base()
	if err != nil {
		return nil, err
	}
	if !i.Empty() {
		certFile, keyFile := i.CertFile, i.KeyFile
		if i.ClientCertFile != "" || i.ClientKeyFile != "" {
			certFile, keyFile = i.ClientCertFile, i.ClientKeyFile
		}
		pair := newKeyPair(certFile, keyFile)
		if _, err := pair.get(); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return pair.get() }
	}
	if i.TrustedCAFile != "" {
		if cfg.RootCAs, err = loadPool(i.TrustedCAFile); err != nil {
			return nil, err
		}
	}
	cfg.InsecureSkipVerify = i.SelfSigned
	return cfg, nil
}

func (i Info) base() (*tls.Config, error) {
	if (i.CertFile == "") != (i.KeyFile == "") {
		return nil, fmt.Errorf("KeyFile and CertFile must both be present[key: %v, cert: %v]", i.KeyFile, i.CertFile)
	}
	if (i.ClientCertFile == "") != (i.ClientKeyFile == "") {
		return nil, fmt.Errorf("ClientKeyFile and ClientCertFile must both be present or both absent: key: %v, cert: %v]", i.ClientKeyFile, i.ClientCertFile)
	}
	cfg := &tls.Config{MinVersion: i.MinVersion, MaxVersion: i.MaxVersion, CipherSuites: slices.Clone(i.CipherSuites)}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read trusted CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("trusted CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// keyPair is a certificate and key on disk, parsed again when either
// file changes.
type keyPair struct {
	certFile, keyFile string

	mu     sync.Mutex
	stamps [2]stamp
	pair   *tls.Certificate
}

// stamp tells one version of a file from the next.
type stamp struct {
	mod  time.Time
	size int64
}

func newKeyPair(certFile, keyFile string) *keyPair {
	return &keyPair{certFile: certFile, keyFile: keyFile}
}

func (k *keyPair) get() (*tls.Certificate, error) {
	var now [2]stamp
	for n, path := range []string{k.certFile, k.keyFile} {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("load TLS key pair: %w", err)
		}
		now[n] = stamp{mod: fi.ModTime(), size: fi.Size()}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.pair != nil && now == k.stamps {
		return k.pair, nil
	}
	pair, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		// A renewal caught half-written: keep serving the previous pair
		// rather than failing every handshake until the next write.
		if k.pair != nil {
			return k.pair, nil
		}
		return nil, fmt.Errorf("load TLS key pair %s, %s: %w", k.certFile, k.keyFile, err)
	}
	k.pair, k.stamps = &pair, now
	return k.pair, nil
}

// checkCRL refuses certificates whose serial the revocation list names.
// The list is read at each handshake, so a new one applies at once.
func checkCRL(path string, certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read CRL file: %w", err)
	}
	// etcd reads DER; PEM, as openssl writes by default, is taken too.
	if block, _ := pem.Decode(b); block != nil && block.Type == "X509 CRL" {
		b = block.Bytes
	}
	list, err := x509.ParseRevocationList(b)
	if err != nil {
		return fmt.Errorf("parse CRL file %s: %w", path, err)
	}
	for _, rc := range list.RevokedCertificateEntries {
		for _, c := range certs {
			if c.SerialNumber.Cmp(rc.SerialNumber) == 0 {
				return fmt.Errorf("transport: certificate serial %x revoked", c.SerialNumber.Bytes())
			}
		}
	}
	return nil
}

// ParseVersion reads a --tls-min-version or --tls-max-version value: ""
// (Go's choice), TLS1.2 or TLS1.3.
func ParseVersion(s string) (uint16, error) {
	switch s {
	case "":
		return 0, nil
	case "TLS1.2":
		return tls.VersionTLS12, nil
	case "TLS1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("unexpected TLS version %q (must be one of: TLS1.2, TLS1.3)", s)
}

// ParseCipherSuites reads --cipher-suites names, as Go spells them (with
// the two short ChaCha20 names etcd also takes).
func ParseCipherSuites(names []string) ([]uint16, error) {
	ids := make([]uint16, 0, len(names))
	for _, name := range names {
		id, ok := cipherSuite(name)
		if !ok {
			return nil, fmt.Errorf("unexpected TLS cipher suite %q", name)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func cipherSuite(name string) (uint16, bool) {
	for _, c := range slices.Concat(tls.CipherSuites(), tls.InsecureCipherSuites()) {
		if c.Name == name {
			return c.ID, true
		}
	}
	switch name {
	case "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305":
		return tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, true
	case "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305":
		return tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true
	}
	return 0, false
}
