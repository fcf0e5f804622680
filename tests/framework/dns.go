package framework

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSServer is a tiny authoritative DNS server on 127.0.0.1 UDP for tests
// of DNS discovery. It answers SRV, A and AAAA questions from the records
// added to it, says NXDOMAIN for names it has no record of, and stops when
// the test ends.
type DNSServer struct {
	// Addr is the host:port to send queries to.
	Addr string

	conn net.PacketConn
	mu   sync.Mutex
	srv  map[string][]dnsmessage.SRVResource
	ips  map[string][]netip.Addr
	done chan struct{}
}

// StartDNS starts a DNSServer on a free UDP port.
func StartDNS(t testing.TB) *DNSServer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dns server: %v", err)
	}
	d := &DNSServer{
		Addr: conn.LocalAddr().String(),
		conn: conn,
		srv:  map[string][]dnsmessage.SRVResource{},
		ips:  map[string][]netip.Addr{},
		done: make(chan struct{}),
	}
	go d.serve()
	t.Cleanup(func() { conn.Close(); <-d.done })
	return d
}

func canonical(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// AddSRV adds an SRV record name -> target:port, such as
// ("_etcd-server._tcp.example.test", "m1.example.test", 2380).
func (d *DNSServer) AddSRV(name, target string, port uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := canonical(name)
	tgt, err := dnsmessage.NewName(canonical(target))
	if err != nil {
		panic(err)
	}
	d.srv[n] = append(d.srv[n], dnsmessage.SRVResource{Priority: 10, Weight: 10, Port: port, Target: tgt})
}

// AddHost adds an A or AAAA record for name.
func (d *DNSServer) AddHost(name, ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := canonical(name)
	d.ips[n] = append(d.ips[n], netip.MustParseAddr(ip))
}

func (d *DNSServer) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		var req dnsmessage.Message
		if err := req.Unpack(buf[:n]); err != nil {
			continue
		}
		resp := d.answer(req)
		if b, err := resp.Pack(); err == nil {
			_, _ = d.conn.WriteTo(b, from)
		}
	}
}

func (d *DNSServer) answer(req dnsmessage.Message) dnsmessage.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	resp := dnsmessage.Message{
		Header: dnsmessage.Header{
			ID: req.ID, Response: true, Authoritative: true,
			RecursionDesired: req.RecursionDesired, RecursionAvailable: true,
		},
		Questions: req.Questions,
	}
	for _, q := range req.Questions {
		name := canonical(q.Name.String())
		srvs, hasSRV := d.srv[name]
		ips, hasIP := d.ips[name]
		if !hasSRV && !hasIP {
			resp.RCode = dnsmessage.RCodeNameError
			continue
		}
		h := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		switch q.Type {
		case dnsmessage.TypeSRV:
			for _, s := range srvs {
				h.Type = dnsmessage.TypeSRV
				resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &s})
			}
		case dnsmessage.TypeA:
			for _, ip := range ips {
				if ip.Is4() {
					h.Type = dnsmessage.TypeA
					resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: ip.As4()}})
				}
			}
		case dnsmessage.TypeAAAA:
			for _, ip := range ips {
				if ip.Is6() {
					h.Type = dnsmessage.TypeAAAA
					resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: ip.As16()}})
				}
			}
		}
	}
	return resp
}
