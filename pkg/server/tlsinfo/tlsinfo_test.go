package tlsinfo

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvd-io/kvd/tests/framework"
)

// handshake runs a TLS handshake between server and client over a pipe
// and returns the server's verdict, or the client's when the server had
// none to give.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	errc := make(chan error, 1)
	go func() {
		s := tls.Server(a, server)
		err := s.Handshake()
		if err == nil {
			// TLS 1.3 finishes the client's side before the server has
			// judged its certificate: one byte each way settles it.
			_, err = s.Write([]byte{1})
		}
		errc <- err
		a.Close()
	}()
	c := tls.Client(b, client)
	cerr := c.Handshake()
	if cerr == nil {
		_, cerr = c.Read(make([]byte, 1))
	}
	// A client that gave up, maybe before saying anything, must not
	// leave the server waiting.
	b.Close()
	if serr := <-errc; serr != nil {
		return serr
	}
	return cerr
}

func TestServerConfigVerifiesClients(t *testing.T) {
	certs := framework.NewCerts(t)
	aliceCert, aliceKey := certs.Leaf(t, "alice", framework.ClientAuth)
	crl := certs.CRL(t, aliceCert)
	base := Info{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, TrustedCAFile: certs.CA, ClientCertAuth: true}
	withCN := base
	withCN.AllowedCNs = []string{"client"}
	withCRL := base
	withCRL.CRLFile = crl
	noAuth := Info{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}
	cases := []struct {
		name      string
		server    Info
		cert, key string
		ok        bool
	}{
		{"client certificate", base, certs.ClientCert, certs.ClientKey, true},
		{"no client certificate", base, "", "", false},
		{"client certificate not required", noAuth, "", "", true},
		{"allowed common name", withCN, certs.ClientCert, certs.ClientKey, true},
		{"common name not allowed", withCN, aliceCert, aliceKey, false},
		{"certificate not revoked", withCRL, certs.ClientCert, certs.ClientKey, true},
		{"revoked certificate", withCRL, aliceCert, aliceKey, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scfg, err := tc.server.ServerConfig()
			if err != nil {
				t.Fatal(err)
			}
			ccfg := certs.TLSWith(t, tc.cert, tc.key)
			ccfg.ServerName = "localhost"
			err = handshake(t, scfg, ccfg)
			if (err == nil) != tc.ok {
				t.Fatalf("handshake error %v, want success %v", err, tc.ok)
			}
		})
	}
}

func TestClientConfigShowsPeerCertificate(t *testing.T) {
	certs := framework.NewCerts(t)
	peer := Info{CertFile: certs.PeerCert, KeyFile: certs.PeerKey, TrustedCAFile: certs.CA, ClientCertAuth: true}
	scfg, err := peer.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := peer.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	ccfg.ServerName = "localhost"
	if err := handshake(t, scfg, ccfg); err != nil {
		t.Fatalf("peer to peer: %v", err)
	}
	stranger := framework.NewCerts(t)
	other := Info{CertFile: stranger.PeerCert, KeyFile: stranger.PeerKey, TrustedCAFile: certs.CA}
	ocfg, err := other.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	ocfg.ServerName = "localhost"
	if err := handshake(t, scfg, ocfg); err == nil {
		t.Fatal("a peer certificate of another CA was accepted")
	}
}

func TestVersionsAndSuites(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint16
		ok   bool
	}{{"", 0, true}, {"TLS1.2", tls.VersionTLS12, true}, {"TLS1.3", tls.VersionTLS13, true}, {"TLS1.1", 0, false}, {"tls1.2", 0, false}} {
		got, err := ParseVersion(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseVersion(%q) = %d, %v", tc.in, got, err)
		}
	}
	ids, err := ParseCipherSuites([]string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"})
	if err != nil || len(ids) != 2 || ids[0] != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 || ids[1] != tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 {
		t.Errorf("ParseCipherSuites: %v %v", ids, err)
	}
	if _, err := ParseCipherSuites([]string{"TLS_FAKE"}); err == nil {
		t.Error("an unknown suite was accepted")
	}
}

func TestSelfCertMadeOnceAndServes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fixtures", "client")
	info, err := SelfCert(dir, []string{"127.0.0.1:2379", "localhost:2379"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(info.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	again, err := SelfCert(dir, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if second, _ := os.ReadFile(again.CertFile); string(second) != string(first) {
		t.Fatal("a second start made a new certificate")
	}
	scfg, err := info.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := info.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, scfg, ccfg); err != nil {
		t.Fatalf("self-signed pair: %v", err)
	}
	if _, err := SelfCert(t.TempDir(), nil, 0); err == nil {
		t.Fatal("a validity of 0 years was accepted")
	}
}

// tcpHandshake is handshake over a real 127.0.0.1 connection, whose
// remote address the SAN check needs.
func tcpHandshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	errc := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		s := tls.Server(conn, server)
		if err = s.Handshake(); err == nil {
			_, err = s.Write([]byte{1})
		}
		errc <- err
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(conn, client)
	cerr := c.Handshake()
	if cerr == nil {
		_, cerr = c.Read(make([]byte, 1))
	}
	conn.Close()
	if serr := <-errc; serr != nil {
		return serr
	}
	return cerr
}

func TestPeerSANMustMatchRemoteAddress(t *testing.T) {
	certs := framework.NewCerts(t)
	elsewhere, elsewhereKey := certs.LeafFor(t, "elsewhere", framework.BothAuth, []net.IP{net.IPv4(10, 9, 9, 9)}, nil)
	named, namedKey := certs.LeafFor(t, "named", framework.BothAuth, nil, []string{"localhost"})
	bare, bareKey := certs.LeafFor(t, "bare", framework.BothAuth, nil, nil)
	cases := []struct {
		name      string
		cert, key string
		check     bool
		ok        bool
	}{
		{"IP address matches", certs.PeerCert, certs.PeerKey, true, true},
		{"DNS name resolves to the address", named, namedKey, true, true},
		{"no host named", bare, bareKey, true, true},
		{"IP address elsewhere", elsewhere, elsewhereKey, true, false},
		{"IP address elsewhere, check skipped", elsewhere, elsewhereKey, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			server := Info{CertFile: certs.PeerCert, KeyFile: certs.PeerKey, TrustedCAFile: certs.CA, ClientCertAuth: true, CheckClientSAN: tc.check}
			scfg, err := server.ServerConfig()
			if err != nil {
				t.Fatal(err)
			}
			ccfg := certs.TLSWith(t, tc.cert, tc.key)
			ccfg.ServerName = "localhost"
			if err := tcpHandshake(t, scfg, ccfg); (err == nil) != tc.ok {
				t.Fatalf("handshake error %v, want success %v", err, tc.ok)
			}
		})
	}
}
