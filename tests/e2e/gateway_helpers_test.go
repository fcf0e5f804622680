package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/tests/framework"
)

// gwPair is a fresh kvd and a fresh etcd v3.7.3, each a single member,
// that a test sends the same HTTP/JSON gateway requests to.
type gwPair struct {
	t         *testing.T
	kvd, etcd *framework.Member
}

func startGatewayPair(t *testing.T, extra ...string) *gwPair {
	t.Helper()
	e := framework.StartEtcd(t, extra...)
	k := framework.StartKvd(t, extra...)
	return &gwPair{t: t, kvd: k, etcd: e}
}

// gwAnswer is what one server answered: the HTTP status, the body parsed
// as JSON (nil when it is not JSON) and the raw body.
type gwAnswer struct {
	Status int
	Header http.Header
	JSON   any
	Raw    string
}

// gwPost posts body to path on m with the given headers and reads the
// whole answer.
func gwPost(t *testing.T, m *framework.Member, path, body string, headers ...string) gwAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp := gwSendMethod(ctx, t, m, http.MethodPost, path, body, headers...)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s answer from %s: %v", path, m.Name, err)
	}
	a := gwAnswer{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if err := json.Unmarshal(raw, &a.JSON); err != nil {
		a.JSON = nil
	}
	return a
}

// gwSend posts and returns the response with its body unread, for
// streams.
func gwSend(ctx context.Context, t *testing.T, m *framework.Member, path, body string, headers ...string) *http.Response {
	t.Helper()
	return gwSendMethod(ctx, t, m, http.MethodPost, path, body, headers...)
}

func gwSendMethod(ctx context.Context, t *testing.T, m *framework.Member, method, path, body string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, m.ClientURL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s to %s: %v", method, path, m.Name, err)
	}
	return resp
}

// same sends one request to both servers and requires the same status
// and the same JSON once the fields named in mask are masked; it returns
// kvd's answer, unmasked.
func (p *gwPair) same(path, body string, mask []string, headers ...string) gwAnswer {
	p.t.Helper()
	return p.sameWith(path, body, mask, headers, headers)
}

// sameWith is same with different headers for each server (their own
// tokens).
func (p *gwPair) sameWith(path, body string, mask []string, kvdHeaders, etcdHeaders []string) gwAnswer {
	p.t.Helper()
	want := gwPost(p.t, p.etcd, path, body, etcdHeaders...)
	got := gwPost(p.t, p.kvd, path, body, kvdHeaders...)
	compareAnswers(p.t, path+" "+body, got, want, mask)
	return got
}

func compareAnswers(t *testing.T, what string, got, want gwAnswer, mask []string) {
	t.Helper()
	if want.JSON == nil {
		t.Fatalf("%s: etcd answered %d with a body that is not JSON: %q", what, want.Status, want.Raw)
	}
	if got.Status != want.Status {
		t.Errorf("%s: kvd answered HTTP %d, etcd %d\nkvd:  %s\netcd: %s", what, got.Status, want.Status, got.Raw, want.Raw)
		return
	}
	g, w := masked(got.JSON, mask), masked(want.JSON, mask)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: answers differ (masked %v)\nkvd:  %s\netcd: %s", what, mask, canon(g), canon(w))
	}
}

// masked returns v with the value of every object field named in mask,
// at any depth, replaced by a placeholder: a field present on one side
// only still shows. Strings have their no-break spaces made plain.
func masked(v any, mask []string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			switch {
			case slices.Contains(mask, k):
				out[k] = "<masked>"
			case k == "members" && slices.Contains(mask, "ID"):
				// Listed by member ID, which is random: with the IDs
				// masked, the order is compared as a set.
				ms, _ := masked(e, mask).([]any)
				slices.SortFunc(ms, func(a, b any) int { return strings.Compare(canon(a), canon(b)) })
				out[k] = ms
			default:
				out[k] = masked(e, mask)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = masked(e, mask)
		}
		return out
	case string:
		// protojson writes a no-break space, or a plain one, after
		// "proto:" in its errors, chosen by a digest of the binary to
		// keep anyone from matching them byte for byte.
		return strings.ReplaceAll(x, "\u00a0", " ")
	}
	return v
}

// canon prints v as JSON with sorted keys, for messages.
func canon(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// field walks v along path (object keys) and returns what it finds, or
// nil.
func field(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// gwStream is an open streaming gateway call: each answer is one line
// of JSON, read as it comes, as curl -N shows it.
type gwStream struct {
	t      *testing.T
	name   string
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

func openStream(t *testing.T, m *framework.Member, path, body string, headers ...string) *gwStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	resp := gwSend(ctx, t, m, path, body, headers...)
	s := &gwStream{t: t, name: m.Name, resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(s.close)
	return s
}

// next reads the next line of the stream, parsed.
func (s *gwStream) next() gwAnswer {
	s.t.Helper()
	line, err := s.r.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		s.t.Fatalf("%s stream: %v", s.name, err)
	}
	a := gwAnswer{Status: s.resp.StatusCode, Raw: string(bytes.TrimSpace(line))}
	if err := json.Unmarshal(line, &a.JSON); err != nil {
		s.t.Fatalf("%s stream line is not JSON: %q", s.name, line)
	}
	return a
}

func (s *gwStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// streams opens the same stream on both servers.
func (p *gwPair) streams(path, body string) (kvd, etcd *gwStream) {
	p.t.Helper()
	return openStream(p.t, p.kvd, path, body), openStream(p.t, p.etcd, path, body)
}

// sameNext reads one line from each stream and compares them.
func sameNext(t *testing.T, what string, kvd, etcd *gwStream, mask []string) gwAnswer {
	t.Helper()
	want := etcd.next()
	got := kvd.next()
	compareAnswers(t, what, got, want, mask)
	return got
}

// b64 is how the gateway carries bytes.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
