package framework

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// HTTPProxy is a forward HTTP proxy on 127.0.0.1, as a member's
// --discovery-proxy names one. Whatever host a request is for, it goes
// to target (host:port), so a URL naming a host no one can resolve is
// reachable only through the proxy. It stops when the test ends.
type HTTPProxy struct {
	srv      *httptest.Server
	requests atomic.Int64
	target   atomic.Pointer[string]
}

// StartHTTPProxy starts a proxy that forwards every request to target.
func StartHTTPProxy(t testing.TB, target string) *HTTPProxy {
	t.Helper()
	p := &HTTPProxy{}
	p.SetTarget(target)
	tr := &http.Transport{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host = "http", *p.target.Load()
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(func() { p.srv.Close(); tr.CloseIdleConnections() })
	return p
}

// SetTarget sends the requests from now on to target (host:port).
func (p *HTTPProxy) SetTarget(target string) { p.target.Store(&target) }

// Addr is the proxy's host:port.
func (p *HTTPProxy) Addr() string { return p.srv.Listener.Addr().String() }

// Requests is how many requests the proxy has forwarded.
func (p *HTTPProxy) Requests() int64 { return p.requests.Load() }
