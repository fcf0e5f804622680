package framework

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
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

	// get sends one request on a new connection, from the member named
	// from (none when empty), and says whether it was answered.
	get := func(from string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr()+"/", nil)
		if from != "" {
			req.Header.Set("X-Kvd-From", from)
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
		got := want{get("a"), get("b"), get("")}
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
	tr := &http.Transport{}
	c := http.Client{Transport: tr, Timeout: 500 * time.Millisecond}
	if resp, err := c.Get("http://" + p.Addr() + "/"); err != nil {
		t.Fatal(err)
	} else {
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	p.Blackhole()
	if _, err := c.Get("http://" + p.Addr() + "/"); err == nil {
		t.Fatal("request answered through a blackhole")
	}
	p.mu.Lock()
	open := len(p.conns)
	p.mu.Unlock()
	if open == 0 {
		t.Fatal("blackhole closed the connections; they should hang")
	}
	p.Heal()
	deadline := time.Now().Add(2 * time.Second)
	for {
		p.mu.Lock()
		open = len(p.conns)
		p.mu.Unlock()
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d blackholed connections still open after Heal", open)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, err := c.Get("http://" + p.Addr() + "/"); err != nil {
		t.Fatalf("after heal: %v", err)
	} else {
		resp.Body.Close()
	}
}
