package framework

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/kvd-io/kvd/pkg/server/raftnode"
)

// TestProxyFaults sends HTTP requests through a Proxy, as two members'
// peer transports would (each naming itself in X-Kvd-From), and checks
// that each fault stops exactly the traffic it should and that Heal
// undoes it.
func TestProxyFaults(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	p := StartProxy(t, srv.Listener.Addr().String())

	type want struct{ a, b, anon bool }
	steps := []struct {
		name  string
		fault func()
		want  want
	}{
		{"open", func() {}, want{true, true, true}},
		{"refuse a", func() { p.RefuseFrom("a") }, want{false, true, true}},
		{"heal", p.Heal, want{true, true, true}},
		{"cut", p.Cut, want{false, false, false}},
		{"heal after cut", p.Heal, want{true, true, true}},
		{"blackhole", p.Blackhole, want{false, false, false}},
		{"heal after blackhole", p.Heal, want{true, true, true}},
	}
	for _, s := range steps {
		s.fault()
		got := want{get(t, p, "a"), get(t, p, "b"), get(t, p, "")}
		if got != s.want {
			t.Errorf("%s: answered (a, b, anonymous) = %v, want %v", s.name, got, s.want)
		}
	}
}

// TestProxyBlackholeKeepsConnections checks that a blackhole silences an
// open connection without closing it, and that Heal closes it, so its
// client reconnects instead of reading a stream with bytes missing.
func TestProxyBlackholeKeepsConnections(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	p := StartProxy(t, srv.Listener.Addr().String())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.Blackhole()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 512)
	if n, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through a blackhole: %q, %v; want nothing, connection open", buf[:n], err)
	}
	p.Heal()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after heal: %q, %v; want the blackholed connection closed", buf[:n], err)
	}
	if !get(t, p, "") {
		t.Fatal("new connection not answered after heal")
	}
}

// get sends one request through p on a new connection, from the member
// named from (none when empty), and says whether it was answered.
func get(t *testing.T, p *Proxy, from string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr()+"/", nil)
	if from != "" {
		req.Header.Set(raftnode.FromHeader, from)
	}
	c := http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return err == nil && string(b) == "ok"
}
