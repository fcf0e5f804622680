package framework

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvd-io/kvd/pkg/server/raftnode"
)

// Proxy forwards TCP connections from a 127.0.0.1 port to a target and
// injects network faults into them. In front of a member's peer URL it
// can cut the member off from what the others send it, or refuse only
// what one member sends; in front of a client URL it can blackhole
// clients. It stops when the test ends.
type Proxy struct {
	l      net.Listener
	target string

	mu        sync.Mutex
	cut       bool
	blackhole bool
	// dropReplies forwards requests but drops what the target answers:
	// a request applies and its client never learns.
	dropReplies bool
	refused     map[string]bool // X-Kvd-From values whose connections are dropped
	conns       map[net.Conn]*proxyConn
	wg          sync.WaitGroup
}

// proxyConn is what the proxy knows of one side of a forwarded
// connection.
type proxyConn struct {
	from       string // the sending member's ID, when its first request named it
	blackholed bool   // bytes were dropped, so the stream is broken
}

// StartProxy listens on a free 127.0.0.1 port and forwards to target.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{l: l, target: target, conns: map[net.Conn]*proxyConn{}, refused: map[string]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Cut drops every open connection and refuses new ones until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Blackhole keeps connections open, and accepts new ones, but forwards
// nothing either way until Heal: the peer sees a silent network rather
// than a refused connection, as with a dropped route.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	p.blackhole = true
	p.mu.Unlock()
}

// DropReplies keeps forwarding what clients send but drops every byte the
// target sends back, until Heal: the client's requests take effect while
// it sees no answer, as when a connection breaks just after a request.
func (p *Proxy) DropReplies() {
	p.mu.Lock()
	p.dropReplies = true
	p.mu.Unlock()
}

// RefuseFrom drops the connections of the kvd member whose ID (hex, as
// its peer transport sends it) is from, now and until Heal, and lets
// every other member's through. Cutting a member's own proxy and
// refusing it at every other member's makes a two-way partition.
func (p *Proxy) RefuseFrom(from string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused[from] = true
	for c, pc := range p.conns {
		if pc.from == from {
			c.Close()
		}
	}
}

// Heal ends every fault. Connections whose bytes a blackhole dropped are
// closed, as their streams are corrupt; their clients reconnect.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut, p.blackhole, p.dropReplies = false, false, false
	clear(p.refused)
	for c, pc := range p.conns {
		if pc.blackholed {
			c.Close()
		}
	}
}

func (p *Proxy) close() {
	p.l.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.connect(in)
	}
}

// connect reads the head of the first request on in, to learn which
// member sends it, then dials the target and forwards both ways.
func (p *Proxy) connect(in net.Conn) {
	defer p.wg.Done()
	pc := &proxyConn{}
	head, from := sniffFrom(in)
	pc.from = from
	if !p.track(in, pc) {
		in.Close()
		return
	}
	out, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(out, pc) {
		p.untrack(in)
		if out != nil {
			out.Close()
		}
		return
	}
	p.wg.Add(2)
	go p.pipe(io.MultiReader(bytes.NewReader(head), in), in, out, pc, false)
	go p.pipe(out, out, in, pc, true)
}

// sniffFrom reads what the client sends first, up to the end of an
// HTTP request head, and returns it with the X-Kvd-From value found in
// it. A client that sends nothing within a second is forwarded as is.
func sniffFrom(c net.Conn) ([]byte, string) {
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	var head []byte
	buf := make([]byte, 4096)
	for len(head) < 16<<10 && !bytes.Contains(head, []byte("\r\n\r\n")) {
		n, err := c.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			break
		}
	}
	r := bufio.NewReader(bytes.NewReader(head))
	if _, err := r.ReadString('\n'); err != nil {
		return head, ""
	}
	h, _ := textproto.NewReader(r).ReadMIMEHeader()
	return head, strings.ToLower(h.Get(raftnode.FromHeader))
}

// track registers c unless a fault refuses it.
func (p *Proxy) track(c net.Conn, pc *proxyConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || (pc.from != "" && p.refused[pc.from]) {
		return false
	}
	p.conns[c] = pc
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// pipe copies from src to dst, or drops what it reads while the proxy is
// a blackhole, or while it drops replies if src is the target's side.
func (p *Proxy) pipe(src io.Reader, from, to net.Conn, pc *proxyConn, reply bool) {
	defer p.wg.Done()
	defer p.untrack(from)
	defer p.untrack(to)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := p.blackhole || (reply && p.dropReplies)
			if drop {
				pc.blackholed = true
			}
			p.mu.Unlock()
			if !drop {
				if _, werr := to.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}
