package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
)

// fakeResolver answers from fixed tables; a name it does not know is an
// error, as NXDOMAIN would be.
type fakeResolver struct {
	srv   map[string][]*net.SRV // "_service._proto.name"
	hosts map[string][]string
}

func (f fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	q := "_" + service + "._" + proto + "." + name
	recs, ok := f.srv[q]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: q, IsNotFound: true}
	}
	return q + ".", recs, nil
}

func (f fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	addrs, ok := f.hosts[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func rec(target string, port uint16) *net.SRV { return &net.SRV{Target: target, Port: port} }

func TestSRV(t *testing.T) {
	hosts := map[string][]string{
		"infra0.example.com": {"10.0.1.10"},
		"infra1.example.com": {"10.0.1.11"},
		"infra2.example.com": {"10.0.1.12", "fd00::12"},
	}
	three := []*net.SRV{rec("infra0.example.com.", 2380), rec("infra1.example.com.", 2380), rec("infra2.example.com.", 2380)}
	tests := []struct {
		name      string
		srv       map[string][]*net.SRV
		svcName   string
		member    string
		advertise []string
		want      string
		wantErr   string
	}{
		{
			name:      "http records, member named by IP match",
			srv:       map[string][]*net.SRV{"_etcd-server._tcp.example.com": three},
			member:    "infra1",
			advertise: []string{"http://10.0.1.11:2380"},
			want:      "0=http://infra0.example.com:2380,infra1=http://infra1.example.com:2380,1=http://infra2.example.com:2380",
		},
		{
			name:      "https records",
			srv:       map[string][]*net.SRV{"_etcd-server-ssl._tcp.example.com": three},
			member:    "infra0",
			advertise: []string{"https://infra0.example.com:2380"},
			want:      "infra0=https://infra0.example.com:2380,0=https://infra1.example.com:2380,1=https://infra2.example.com:2380",
		},
		{
			name: "both schemes combine, https first, one counter",
			srv: map[string][]*net.SRV{
				"_etcd-server-ssl._tcp.example.com": {rec("infra0.example.com.", 2380)},
				"_etcd-server._tcp.example.com":     {rec("infra1.example.com.", 2380), rec("infra2.example.com.", 2380)},
			},
			member:    "infra2",
			advertise: []string{"http://[fd00::12]:2380"},
			want:      "0=https://infra0.example.com:2380,1=http://infra1.example.com:2380,infra2=http://infra2.example.com:2380",
		},
		{
			name:      "service name suffix",
			srv:       map[string][]*net.SRV{"_etcd-server-prod._tcp.example.com": three[:2]},
			svcName:   "prod",
			member:    "infra0",
			advertise: []string{"http://10.0.1.10:2380"},
			want:      "infra0=http://infra0.example.com:2380,0=http://infra1.example.com:2380",
		},
		{
			name:      "service name suffix ignores plain records",
			srv:       map[string][]*net.SRV{"_etcd-server._tcp.example.com": three},
			svcName:   "prod",
			member:    "infra0",
			advertise: []string{"http://10.0.1.10:2380"},
			wantErr:   "no SRV records",
		},
		{
			name:      "port must match too",
			srv:       map[string][]*net.SRV{"_etcd-server._tcp.example.com": three},
			member:    "infra0",
			advertise: []string{"http://10.0.1.10:12380"},
			wantErr:   `cannot find local member "infra0"`,
		},
		{
			name:      "scheme mismatch is not this member",
			srv:       map[string][]*net.SRV{"_etcd-server-ssl._tcp.example.com": three},
			member:    "infra0",
			advertise: []string{"http://10.0.1.10:2380"},
			wantErr:   "schemes differ",
		},
		{
			name:      "unresolvable target is skipped",
			srv:       map[string][]*net.SRV{"_etcd-server._tcp.example.com": append(slices.Clone(three), rec("gone.example.com.", 2380))},
			member:    "infra0",
			advertise: []string{"http://10.0.1.10:2380"},
			want:      "infra0=http://infra0.example.com:2380,0=http://infra1.example.com:2380,1=http://infra2.example.com:2380",
		},
		{
			name:      "no records",
			srv:       map[string][]*net.SRV{},
			member:    "infra0",
			advertise: []string{"http://10.0.1.10:2380"},
			wantErr:   "no SRV records for the peers of example.com",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fakeResolver{srv: tt.srv, hosts: hosts}
			got, err := SRVCluster(context.Background(), r, SRVConfig{
				Domain: "example.com", ServiceName: tt.svcName, Name: tt.member, AdvertisePeerURLs: tt.advertise,
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q (cluster %q)", err, tt.wantErr, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("initial cluster\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestServerService(t *testing.T) {
	for _, tt := range []struct{ scheme, name, want string }{
		{"http", "", "etcd-server"},
		{"https", "", "etcd-server-ssl"},
		{"http", "a", "etcd-server-a"},
		{"https", "a", "etcd-server-ssl-a"},
	} {
		if got := ServerService(tt.scheme, tt.name); got != tt.want {
			t.Errorf("ServerService(%q, %q) = %q, want %q", tt.scheme, tt.name, got, tt.want)
		}
	}
}

func TestSamePeerURLs(t *testing.T) {
	r := fakeResolver{hosts: map[string][]string{"m1.test": {"127.0.0.1"}, "m2.test": {"127.0.0.2"}}}
	for _, tt := range []struct {
		a, b []string
		want bool
	}{
		{[]string{"http://m1.test:1"}, []string{"http://127.0.0.1:1"}, true},
		{[]string{"http://m1.test:1"}, []string{"http://127.0.0.1:2"}, false},
		{[]string{"http://m1.test:1"}, []string{"https://127.0.0.1:1"}, false},
		{[]string{"http://m1.test:1", "http://m2.test:1"}, []string{"http://127.0.0.1:1"}, false},
		{[]string{"http://m1.test:1", "http://m2.test:1"}, []string{"http://127.0.0.2:1", "http://127.0.0.1:1"}, true},
	} {
		got, err := SamePeerURLs(context.Background(), r, tt.a, tt.b)
		if err != nil || got != tt.want {
			t.Errorf("SamePeerURLs(%v, %v) = %v, %v; want %v", tt.a, tt.b, got, err, tt.want)
		}
	}
	if _, err := SamePeerURLs(context.Background(), r, []string{"http://nowhere.test:1"}, []string{"http://127.0.0.1:1"}); err == nil {
		t.Error("an unresolvable host compared without error")
	}
}

// TestSRVThroughDNSServer resolves through a real DNS server on 127.0.0.1,
// as a member given --discovery-dns-server does.
func TestSRVThroughDNSServer(t *testing.T) {
	dns := framework.StartDNS(t)
	for i := range 3 {
		host := fmt.Sprintf("m%d.example.test", i+1)
		dns.AddSRV("_etcd-server._tcp.example.test", host, uint16(2380+i))
		dns.AddHost(host, fmt.Sprintf("127.0.0.%d", i+1))
	}
	dns.AddSRV("_etcd-server-ssl-tls._tcp.example.test", "m1.example.test", 2380)
	r := NewResolver(dns.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tests := []struct {
		name, svcName, member, advertise, want string
	}{
		{"http", "", "m2", "http://127.0.0.2:2381",
			"0=http://m1.example.test:2380,m2=http://m2.example.test:2381,1=http://m3.example.test:2382"},
		{"host name advertised", "", "m3", "http://m3.example.test:2382",
			"0=http://m1.example.test:2380,1=http://m2.example.test:2381,m3=http://m3.example.test:2382"},
		{"https with service name", "tls", "m1", "https://127.0.0.1:2380",
			"m1=https://m1.example.test:2380"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SRVCluster(ctx, r, SRVConfig{Domain: "example.test", ServiceName: tt.svcName, Name: tt.member, AdvertisePeerURLs: []string{tt.advertise}})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("initial cluster\n got %s\nwant %s", got, tt.want)
			}
		})
	}

	_, err := SRVCluster(ctx, r, SRVConfig{Domain: "other.test", Name: "m1", AdvertisePeerURLs: []string{"http://127.0.0.1:2380"}})
	var dnsErr *net.DNSError
	if err == nil || !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("unknown domain: err = %v, want a not-found DNS error", err)
	}
}
