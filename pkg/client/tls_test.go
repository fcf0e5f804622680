package client

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestTLSAgainstEtcd talks to an etcd that serves clients over TLS and
// requires a client certificate.
func TestTLSAgainstEtcd(t *testing.T) {
	certs := framework.NewCerts(t)
	m := framework.StartEtcdTLS(t, certs)
	tlsCfg := certs.ClientTLS(t)
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"https endpoint", Config{Endpoints: []string{"https://" + m.Endpoint}, TLS: tlsCfg}, true},
		{"host:port with a TLS config", Config{Endpoints: []string{m.Endpoint}, TLS: tlsCfg}, true},
		{"no client certificate", Config{Endpoints: []string{"https://" + m.Endpoint}, TLS: &tls.Config{RootCAs: tlsCfg.RootCAs}}, false},
		{"untrusted server", Config{Endpoints: []string{"https://" + m.Endpoint}, TLS: &tls.Config{Certificates: tlsCfg.Certificates}}, false},
		{"plain text", Config{Endpoints: []string{m.Endpoint}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.cfg)
			wait := 5 * time.Second
			if !tt.ok {
				wait = 500 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := c.Put(ctx, "k", "v")
			if tt.ok && err != nil {
				t.Fatal(err)
			}
			if !tt.ok && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("want the call to wait for a connection that never comes; got %v", err)
			}
			if tt.ok {
				if st, err := c.Status(ctx, tt.cfg.Endpoints[0]); err != nil || st.Version == "" {
					t.Fatalf("status over TLS: %v %v", st, err)
				}
			}
		})
	}
	if _, err := New(Config{Endpoints: []string{m.Endpoint, "https://" + m.Endpoint}}); err == nil {
		t.Fatal("a mix of plain and TLS endpoints was accepted")
	}
}
