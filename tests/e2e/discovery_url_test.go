package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/tests/framework"
)

// httpAnswer is one answer of the discovery service.
type httpAnswer struct {
	status int
	index  string // X-Etcd-Index
	body   string
}

func discoveryRequest(t *testing.T, method, u string, form url.Values) httpAnswer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpAnswer{status: resp.StatusCode, index: resp.Header.Get("X-Etcd-Index"), body: string(b)}
}

// newToken asks m's discovery service for a URL; size is the raw query
// value, or none at all when empty.
func newToken(t *testing.T, m *framework.Member, size string) httpAnswer {
	t.Helper()
	u := m.ClientURL() + "/new"
	if size != "" {
		u += "?size=" + url.QueryEscape(size)
	}
	return discoveryRequest(t, http.MethodGet, u, nil)
}

// jsonOf decodes an answer's body as generic JSON, so a test sees every
// field the service sent and nothing else.
func jsonOf(t *testing.T, a httpAnswer) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(a.body), &v); err != nil {
		t.Fatalf("answer %d %q is not JSON: %v", a.status, a.body, err)
	}
	return v
}

// TestDiscoveryServiceNewToken: /new answers a URL under the member's
// own client URL with a fresh 128-bit token, of size 3 unless asked; a
// size that is not a positive whole number is refused and creates
// nothing; without --enable-discovery-service there is no /new.
func TestDiscoveryServiceNewToken(t *testing.T) {
	m := framework.StartKvd(t, "--enable-discovery-service")
	seen := map[string]bool{}
	for _, tc := range []struct{ size, want string }{{"", "3"}, {"1", "1"}, {"5", "5"}} {
		a := newToken(t, m, tc.size)
		token, ok := strings.CutPrefix(a.body, m.ClientURL()+"/discovery/")
		if a.status != http.StatusOK || !ok || len(token) != 32 || strings.Trim(token, "0123456789abcdef") != "" || seen[token] {
			t.Fatalf("size %q: %d %q", tc.size, a.status, a.body)
		}
		seen[token] = true
		got := jsonOf(t, discoveryRequest(t, http.MethodGet, a.body+"/_config/size", nil))
		if node, _ := got["node"].(map[string]any); node["value"] != tc.want {
			t.Fatalf("size %q: size key %v", tc.size, got)
		}
	}
	for _, bad := range []string{"0", "-1", "three", "2.5", " "} {
		a := newToken(t, m, bad)
		if a.status != http.StatusBadRequest || !strings.Contains(a.body, "size must be a positive whole number") {
			t.Fatalf("size %q: %d %q", bad, a.status, a.body)
		}
	}
	c := newClient(t, m.Endpoint)
	resp, err := c.Get(t.Context(), "/_kvd/discovery/", client.WithPrefix())
	if err != nil || len(resp.Kvs) != len(seen) {
		t.Fatalf("stored tokens after refused sizes: %v %v (want %d)", resp, err, len(seen))
	}

	plain := framework.StartKvd(t)
	if a := newToken(t, plain, "3"); a.status != http.StatusNotFound {
		t.Fatalf("/new without the service: %d %q", a.status, a.body)
	}
}

// TestDiscoveryServiceProtocol: the answers a v2 discovery member reads,
// in etcd v2's shapes: nodes with key, value, modifiedIndex and
// createdIndex; X-Etcd-Index; errors 100 for a missing key and 105 for a
// registration that exists; a long poll answered by the registration
// that ends it; a wait from an old index answered from history.
func TestDiscoveryServiceProtocol(t *testing.T) {
	m := framework.StartKvd(t, "--enable-discovery-service")
	base := newToken(t, m, "2").body
	key := strings.TrimPrefix(base, m.ClientURL())

	size := discoveryRequest(t, http.MethodGet, base+"/_config/size", nil)
	sizeJSON := jsonOf(t, size)
	node := sizeJSON["node"].(map[string]any)
	created := node["createdIndex"]
	if size.status != http.StatusOK || sizeJSON["action"] != "get" || len(sizeJSON) != 2 ||
		node["key"] != key+"/_config/size" || node["value"] != "2" || node["modifiedIndex"] != created || len(node) != 4 {
		t.Fatalf("size key: %d %s", size.status, size.body)
	}
	if idx, err := strconv.ParseFloat(size.index, 64); err != nil || idx < created.(float64) {
		t.Fatalf("X-Etcd-Index %q, created %v", size.index, created)
	}

	missing := discoveryRequest(t, http.MethodGet, base+"/nobody", nil)
	if e := jsonOf(t, missing); missing.status != http.StatusNotFound || e["errorCode"] != float64(100) ||
		e["message"] != "Key not found" || e["cause"] != key+"/nobody" || e["index"] == nil {
		t.Fatalf("missing key: %d %s", missing.status, missing.body)
	}

	// A long poll on the token, from the next index, ends with the
	// registration made meanwhile.
	waited := make(chan httpAnswer, 1)
	go func() {
		waited <- discoveryRequest(t, http.MethodGet, base+"?wait=true&recursive=true&waitIndex="+nextIndex(t, size.index), nil)
	}()
	value := url.Values{"value": {"m1=http://127.0.0.1:2380"}}
	reg := discoveryRequest(t, http.MethodPut, base+"/1a2b?prevExist=false", value)
	regJSON := jsonOf(t, reg)
	regNode, _ := regJSON["node"].(map[string]any)
	if reg.status != http.StatusCreated || regJSON["action"] != "create" || regNode["key"] != key+"/1a2b" ||
		regNode["value"] != "m1=http://127.0.0.1:2380" || regNode["createdIndex"] != regNode["modifiedIndex"] {
		t.Fatalf("registration: %d %s", reg.status, reg.body)
	}
	select {
	case w := <-waited:
		wJSON := jsonOf(t, w)
		if w.status != http.StatusOK || wJSON["action"] != "create" || fmt.Sprint(wJSON["node"]) != fmt.Sprint(regNode) {
			t.Fatalf("long poll: %d %s; registration %s", w.status, w.body, reg.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the long poll did not end with the registration")
	}

	again := discoveryRequest(t, http.MethodPut, base+"/1a2b?prevExist=false", value)
	if e := jsonOf(t, again); again.status != http.StatusPreconditionFailed || e["errorCode"] != float64(105) ||
		e["message"] != "Key already exists" || e["cause"] != key+"/1a2b" {
		t.Fatalf("second registration: %d %s", again.status, again.body)
	}

	// A wait from an index already passed is answered from history, as a
	// member checking its own registration does.
	hist := discoveryRequest(t, http.MethodGet, fmt.Sprintf("%s/1a2b?wait=true&waitIndex=%v", base, regNode["createdIndex"]), nil)
	if h := jsonOf(t, hist); hist.status != http.StatusOK || fmt.Sprint(h["node"]) != fmt.Sprint(regNode) {
		t.Fatalf("wait from history: %d %s", hist.status, hist.body)
	}

	dir := jsonOf(t, discoveryRequest(t, http.MethodGet, base, nil))
	dirNode := dir["node"].(map[string]any)
	nodes, _ := dirNode["nodes"].([]any)
	if dirNode["key"] != key || dirNode["dir"] != true || len(nodes) != 2 {
		t.Fatalf("token listing: %v", dir)
	}
	for _, n := range nodes {
		n := n.(map[string]any)
		switch n["key"] {
		case key + "/_config":
			if n["dir"] != true || n["nodes"] != nil {
				t.Fatalf("_config in a listing: %v", n)
			}
		case key + "/1a2b":
			if fmt.Sprint(n) != fmt.Sprint(regNode) {
				t.Fatalf("registration in a listing: %v, want %v", n, regNode)
			}
		default:
			t.Fatalf("unexpected node %v", n)
		}
	}

	for _, tc := range []struct {
		method, u string
		status    int
		code      float64
	}{
		{http.MethodPut, base + "/_config/size", http.StatusBadRequest, 209},
		{http.MethodPut, base, http.StatusBadRequest, 209},
		{http.MethodPut, m.ClientURL() + "/discovery/nosuchtoken/1a2b", http.StatusNotFound, 100},
		{http.MethodGet, m.ClientURL() + "/discovery/nosuchtoken", http.StatusNotFound, 100},
		{http.MethodGet, m.ClientURL() + "/discovery/nosuchtoken?wait=true&recursive=true", http.StatusNotFound, 100},
		{http.MethodGet, base + "?wait=true&waitIndex=x", http.StatusBadRequest, 203},
	} {
		a := discoveryRequest(t, tc.method, tc.u, url.Values{"value": {"3"}})
		if e := jsonOf(t, a); a.status != tc.status || e["errorCode"] != tc.code {
			t.Fatalf("%s %s: %d %s", tc.method, tc.u, a.status, a.body)
		}
	}
	if got := jsonOf(t, discoveryRequest(t, http.MethodGet, base+"/_config/size", nil)); got["node"].(map[string]any)["value"] != "2" {
		t.Fatalf("size after refused writes: %v", got)
	}
}

func nextIndex(t *testing.T, index string) string {
	t.Helper()
	n, err := strconv.ParseInt(index, 10, 64)
	if err != nil {
		t.Fatalf("X-Etcd-Index %q", index)
	}
	return strconv.FormatInt(n+1, 10)
}

// TestDiscoveryURLTokenErrors: a member given a URL whose token the
// service never handed out, or whose token has expired, exits at once
// with an error that says so; a token's registrations end with it.
func TestDiscoveryURLTokenErrors(t *testing.T) {
	disc := framework.StartKvd(t, "--enable-discovery-service", "--discovery-token-ttl", "3s")
	expiring := newToken(t, disc, "3").body
	reg := discoveryRequest(t, http.MethodPut, expiring+"/abc?prevExist=false", url.Values{"value": {"x=http://127.0.0.1:1"}})
	if reg.status != http.StatusCreated {
		t.Fatalf("registration: %d %s", reg.status, reg.body)
	}

	unknown := disc.ClientURL() + "/discovery/0123456789abcdef0123456789abcdef"
	m := framework.NewKvdDiscoveryMembers(t, 1, "--discovery", unknown)[0]
	m.Launch()
	t.Cleanup(m.Stop)
	if code, exited := m.WaitExit(30 * time.Second); !exited || code == 0 || !strings.Contains(m.Log(), "discovery: token not found") {
		t.Fatalf("unknown token: exited %v with %d; log:\n%s", exited, code, m.Log())
	}

	deadline := time.Now().Add(30 * time.Second)
	for discoveryRequest(t, http.MethodGet, expiring+"/abc", nil).status != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatal("the token's registration outlived its TTL")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if a := discoveryRequest(t, http.MethodGet, expiring, nil); a.status != http.StatusNotFound {
		t.Fatalf("expired token: %d %s", a.status, a.body)
	}
	m = framework.NewKvdDiscoveryMembers(t, 1, "--discovery", expiring)[0]
	m.Launch()
	if code, exited := m.WaitExit(30 * time.Second); !exited || code == 0 || !strings.Contains(m.Log(), "discovery: token not found") {
		t.Fatalf("expired token: exited %v with %d; log:\n%s", exited, code, m.Log())
	}
}

// TestDiscoveryURLProxy: a member reaches the discovery service only
// through --discovery-proxy (the URL's host does not resolve), with the
// URL from KVD_DISCOVERY, and forms its cluster of one.
func TestDiscoveryURLProxy(t *testing.T) {
	disc := framework.StartKvd(t, "--enable-discovery-service")
	token := strings.TrimPrefix(newToken(t, disc, "1").body, disc.ClientURL())
	proxy := framework.StartHTTPProxy(t, disc.Endpoint)
	m := framework.NewKvdDiscoveryMembers(t, 1, "--discovery-proxy", proxy.Addr())[0]
	m.Env = []string{"KVD_DISCOVERY=http://discovery.invalid" + token}
	m.Launch()
	t.Cleanup(m.Stop)
	m.WaitHealthy(30 * time.Second)
	if proxy.Requests() == 0 {
		t.Fatal("the member did not go through the proxy")
	}
	resp, err := newClient(t, m.Endpoint).MemberList(t.Context())
	if err != nil || len(resp.Members) != 1 || resp.Members[0].Name != m.Name {
		t.Fatalf("member list: %v %v", resp, err)
	}
}

// TestDiscoveryServiceWithAuth: with auth enabled on the serving
// cluster, the service still hands out tokens and takes registrations
// from members that have no credentials, and a member bootstraps.
func TestDiscoveryServiceWithAuth(t *testing.T) {
	disc := framework.StartKvd(t, "--enable-discovery-service")
	ctx := t.Context()
	c := newClient(t, disc.Endpoint)
	enableRootAuth(ctx, t, c, "rootpw")
	a := newToken(t, disc, "1")
	if a.status != http.StatusOK {
		t.Fatalf("/new with auth enabled: %d %s", a.status, a.body)
	}
	m := framework.NewKvdDiscoveryMembers(t, 1, "--discovery", a.body)[0]
	m.Launch()
	t.Cleanup(m.Stop)
	m.WaitHealthy(30 * time.Second)
}

// TestKvctlDiscoveryNew: `kvctl discovery new --size N` prints a URL of
// a token of that size; a size below one is refused before anything is
// asked; a kvd without the service says so.
func TestKvctlDiscoveryNew(t *testing.T) {
	kvctl := framework.BuildKvctl(t)
	disc := framework.StartKvd(t, "--enable-discovery-service")
	out, errOut, code := framework.RunCLI(t, kvctl, disc.Endpoint, "discovery", "new", "--size", "2")
	u := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(u, disc.ClientURL()+"/discovery/") {
		t.Fatalf("discovery new: %d %q %q", code, out, errOut)
	}
	if got := jsonOf(t, discoveryRequest(t, http.MethodGet, u+"/_config/size", nil)); got["node"].(map[string]any)["value"] != "2" {
		t.Fatalf("size of the new token: %v", got)
	}
	if _, errOut, code := framework.RunCLI(t, kvctl, disc.Endpoint, "discovery", "new", "--size", "0"); code != 128 || !strings.Contains(errOut, "--size must be a positive whole number") {
		t.Fatalf("--size 0: %d %q", code, errOut)
	}
	plain := framework.StartKvd(t)
	if _, errOut, code := framework.RunCLI(t, kvctl, plain.Endpoint, "discovery", "new"); code != 1 || !strings.Contains(errOut, "--enable-discovery-service") {
		t.Fatalf("without the service: %d %q", code, errOut)
	}
}
