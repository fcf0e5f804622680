package framework

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Certs are PEM files for a test CA, a server certificate for 127.0.0.1
// and localhost, and a client certificate, all signed by the CA. Leaf
// issues more, such as a peer's or one naming a user.
type Certs struct {
	CA                    string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	// PeerCert and PeerKey serve peer URLs and are shown when dialling
	// peers: good for both ends of a connection.
	PeerCert, PeerKey string

	dir    string
	caCert *x509.Certificate
	caKey  crypto.Signer
	serial atomic.Int64
}

// Leaf kinds: what a certificate may be used for.
const (
	ServerAuth = iota
	ClientAuth
	BothAuth
)

// NewCerts writes a fresh set of certificates into a temporary folder.
// Each call makes a new CA: certificates of two sets do not trust each
// other.
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kvd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	c := &Certs{CA: filepath.Join(dir, "ca.pem"), dir: dir, caCert: caCert, caKey: caKey}
	c.serial.Store(1)
	writePEM(t, c.CA, "CERTIFICATE", caDER)
	c.ServerCert, c.ServerKey = c.Leaf(t, "server", ServerAuth)
	c.ClientCert, c.ClientKey = c.Leaf(t, "client", ClientAuth)
	c.PeerCert, c.PeerKey = c.Leaf(t, "peer", BothAuth)
	return c
}

// Leaf issues a certificate with common name cn for 127.0.0.1 and
// localhost, signed by the CA, with the next serial number, and returns
// its files.
func (c *Certs) Leaf(t testing.TB, cn string, kind int) (certFile, keyFile string) {
	t.Helper()
	return c.LeafFor(t, cn, kind, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
}

// LeafFor is Leaf for the given IP addresses and DNS names (none for a
// certificate that names no host).
func (c *Certs) LeafFor(t testing.TB, cn string, kind int, ips []net.IP, dnsNames []string) (certFile, keyFile string) {
	t.Helper()
	serial := c.serial.Add(1)
	der, keyDER := c.issue(t, cn, serial, kind, ips, dnsNames)
	base := filepath.Join(c.dir, cn+"-"+strconv.FormatInt(serial, 10))
	certFile, keyFile = base+".pem", base+"-key.pem"
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// Renew replaces the server certificate and key files in place with a
// new pair for the same names, as a renewal would, and returns the new
// certificate's serial number. The files are replaced by rename, so a
// reader never sees half of one.
func (c *Certs) Renew(t testing.TB) int64 {
	t.Helper()
	serial := c.serial.Add(1)
	der, keyDER := c.issue(t, "server", serial, ServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
	for _, f := range []struct {
		path, kind string
		der        []byte
	}{{c.ServerKey, "EC PRIVATE KEY", keyDER}, {c.ServerCert, "CERTIFICATE", der}} {
		writePEM(t, f.path+".new", f.kind, f.der)
		if err := os.Rename(f.path+".new", f.path); err != nil {
			t.Fatal(err)
		}
	}
	return serial
}

func (c *Certs) issue(t testing.TB, cn string, serial int64, kind int, ips []net.IP, dnsNames []string) (der, keyDER []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := map[int][]x509.ExtKeyUsage{
		ServerAuth: {x509.ExtKeyUsageServerAuth},
		ClientAuth: {x509.ExtKeyUsageClientAuth},
		BothAuth:   {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}[kind]
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
		IPAddresses: ips, DNSNames: dnsNames,
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, c.caCert, &key.PublicKey, c.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err = x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der, keyDER
}

func writePEM(t testing.TB, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ClientTLS is a client configuration trusting the CA and presenting the
// client certificate.
func (c *Certs) ClientTLS(t testing.TB) *tls.Config {
	t.Helper()
	return c.TLSWith(t, c.ClientCert, c.ClientKey)
}

// TLSWith is a client configuration trusting the CA and presenting the
// given certificate, or none when certFile is empty.
func (c *Certs) TLSWith(t testing.TB, certFile, keyFile string) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: c.Pool(t), MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// Pool holds the CA certificate.
func (c *Certs) Pool(t testing.TB) *x509.CertPool {
	t.Helper()
	ca, err := os.ReadFile(c.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return pool
}

// ServerFlags serve https:// client URLs with the server certificate and
// require client certificates signed by the CA.
func (c *Certs) ServerFlags() []string {
	return []string{"--cert-file", c.ServerCert, "--key-file", c.ServerKey, "--client-cert-auth", "--trusted-ca-file", c.CA}
}

// PeerFlags secure https:// peer URLs with the peer certificate, both
// ways, trusting only the CA.
func (c *Certs) PeerFlags() []string {
	return []string{"--peer-cert-file", c.PeerCert, "--peer-key-file", c.PeerKey, "--peer-client-cert-auth", "--peer-trusted-ca-file", c.CA}
}

// CLIFlags are etcdctl's (and kvctl's) flags presenting the client
// certificate and trusting the CA.
func (c *Certs) CLIFlags() []string {
	return []string{"--cacert", c.CA, "--cert", c.ClientCert, "--key", c.ClientKey}
}

// StartEtcdTLS starts a reference etcd serving clients over TLS with the
// server certificate and requiring client certificates signed by the CA.
func StartEtcdTLS(t testing.TB, c *Certs, extra ...string) *Member {
	t.Helper()
	return StartTLS(t, RequireBin(t, EtcdBin()), "etcd", c, extra...)
}

// StartKvdTLS is StartEtcdTLS for kvd.
func StartKvdTLS(t testing.TB, c *Certs, extra ...string) *Member {
	t.Helper()
	return StartTLS(t, KvdBin(t), "kvd", c, extra...)
}

// StartTLS starts bin (kvd or etcd) as a single member serving clients
// over TLS with c's server certificate, requiring client certificates.
func StartTLS(t testing.TB, bin, name string, c *Certs, extra ...string) *Member {
	t.Helper()
	m := NewMemberAt(t, bin, name, PickPort(t), PickPort(t), append(c.ServerFlags(), extra...)...)
	m.TLS = c.ClientTLS(t)
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// StartClusterTLS starts n members of bin forming one new cluster whose
// peer URLs are https:// with c's peer certificate, required both ways,
// and whose clients are served over TLS as by StartTLS.
func StartClusterTLS(t testing.TB, bin string, n int, c *Certs, extra ...string) []*Member {
	t.Helper()
	flags := append(append(c.ServerFlags(), c.PeerFlags()...), extra...)
	return startClusterWith(t, bin, n, nil, flags, func(m *Member) {
		m.PeerURL = "https://" + m.PeerURL[len("http://"):]
		m.TLS = c.ClientTLS(t)
	})
}

// CRL writes a revocation list, signed by the CA, naming the certificate
// in certFile, and returns its path.
func (c *Certs) CRL(t testing.TB, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(1),
		ThisUpdate:                time.Now().Add(-time.Minute),
		NextUpdate:                time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: cert.SerialNumber, RevocationTime: time.Now()}},
	}, c.caCert, c.caKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.dir, "crl-"+strconv.FormatInt(c.serial.Add(1), 10)+".pem")
	writePEM(t, path, "X509 CRL", der)
	return path
}
