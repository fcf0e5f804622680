package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestTLSFlags(t *testing.T) {
	cfg := parse(t, "--cert-file", "s.crt", "--key-file", "s.key", "--trusted-ca-file", "ca.crt", "--client-cert-auth",
		"--client-crl-file", "c.crl", "--peer-cert-file", "p.crt", "--peer-key-file", "p.key", "--peer-trusted-ca-file", "pca.crt",
		"--peer-client-cert-auth", "--peer-cert-allowed-cn", "m1,m2", "--peer-auto-tls", "--cipher-suites",
		"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "--tls-max-version", "TLS1.3",
		"--self-signed-cert-validity", "3")
	c, p := cfg.ClientTLS, cfg.PeerTLS
	if c.CertFile != "s.crt" || c.KeyFile != "s.key" || c.TrustedCAFile != "ca.crt" || !c.ClientCertAuth || c.CRLFile != "c.crl" {
		t.Errorf("client TLS: %+v", c)
	}
	if p.CertFile != "p.crt" || p.KeyFile != "p.key" || p.TrustedCAFile != "pca.crt" || !p.ClientCertAuth || !slices.Equal(p.AllowedCNs, []string{"m1", "m2"}) {
		t.Errorf("peer TLS: %+v", p)
	}
	if cfg.ClientAutoTLS || !cfg.PeerAutoTLS || cfg.SelfSignedCertValidity != 3 || len(cfg.CipherSuites) != 2 ||
		cfg.TLSMinVersion != "TLS1.2" || cfg.TLSMaxVersion != "TLS1.3" {
		t.Errorf("TLS settings: %+v", cfg)
	}
	d := parse(t)
	if !d.ClientTLS.Empty() || !d.PeerTLS.Empty() || d.TLSMinVersion != "TLS1.2" || d.TLSMaxVersion != "" || d.SelfSignedCertValidity != 1 {
		t.Errorf("defaults: %+v", d)
	}
}

// An etcd config file's nested transport security sections are read; a
// flag wins over them.
func TestTLSConfigFileSections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kvd.yaml")
	yaml := `client-transport-security:
  cert-file: s.crt
  key-file: s.key
  trusted-ca-file: ca.crt
  client-cert-auth: true
peer-transport-security:
  cert-file: p.crt
  key-file: p.key
  auto-tls: true
  allowed-cn: m1
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, "--config-file", path, "--peer-key-file", "flag.key")
	c, p := cfg.ClientTLS, cfg.PeerTLS
	if c.CertFile != "s.crt" || c.KeyFile != "s.key" || c.TrustedCAFile != "ca.crt" || !c.ClientCertAuth {
		t.Errorf("client section: %+v", c)
	}
	if p.CertFile != "p.crt" || p.KeyFile != "flag.key" || !cfg.PeerAutoTLS || !slices.Equal(p.AllowedCNs, []string{"m1"}) {
		t.Errorf("peer section: %+v auto %v", p, cfg.PeerAutoTLS)
	}
}
