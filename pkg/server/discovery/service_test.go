package discovery

import (
	"encoding/json"
	"net/http"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want int
		ok   bool
	}{
		{"3", 3, true}, {" 5 ", 5, true}, {"1", 1, true},
		{"0", 0, false}, {"-1", 0, false}, {"three", 0, false}, {"2.5", 0, false}, {"", 0, false},
	} {
		got, err := ParseSize(tc.raw)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v", tc.raw, got, err)
		}
	}
}

func TestParseTokenPath(t *testing.T) {
	for _, tc := range []struct {
		path, token, rest string
		ok                bool
	}{
		{"/discovery/abc", "abc", "", true},
		{"/discovery/abc/", "abc", "", true},
		{"/discovery/abc/_config/size", "abc", "_config/size", true},
		{"/discovery/abc/../../x", "abc", "x", true}, // stays inside the token
		{"/discovery/", "", "", false},
		{"/discovery/../x", "", "", false},
	} {
		got, ok := parseTokenPath(tc.path)
		if ok != tc.ok || got.token != tc.token || got.rest != tc.rest {
			t.Errorf("parseTokenPath(%q) = %+v %v", tc.path, got, ok)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw, want string
		ok        bool
	}{
		{"http://h:2379/discovery/abc", "http://h:2379/discovery/abc", true},
		{"https://h/discovery/abc/?x=1", "https://h/discovery/abc", true},
		{"http://h:2379/", "", false},
		{"ftp://h/abc", "", false},
		{"/discovery/abc", "", false},
	} {
		u, err := ParseURL(tc.raw)
		if (err == nil) != tc.ok || (tc.ok && u.String() != tc.want) {
			t.Errorf("ParseURL(%q) = %v, %v", tc.raw, u, err)
		}
	}
}

func TestProxyFunc(t *testing.T) {
	for raw, want := range map[string]string{"127.0.0.1:3128": "http://127.0.0.1:3128", "http://p:8080": "http://p:8080"} {
		f, err := proxyFunc(raw)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://service/discovery/t", nil)
		if u, err := f(req); err != nil || u.String() != want {
			t.Errorf("proxy %q: %v %v", raw, u, err)
		}
	}
}

// TestBuildNode: the v2 nodes a token's keys make, listed one level
// deep unless recursive, with v2's field names.
func TestBuildNode(t *testing.T) {
	kv := func(rest, value string, create, mod int64) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte(storeKey("tok", rest)), Value: []byte(value), CreateRevision: create, ModRevision: mod}
	}
	kvs := []*mvccpb.KeyValue{kv("_config/size", "3", 2, 2), kv("a1", "m1=http://h:1", 4, 4), kv("b2", "m2=http://h:2", 3, 5)}
	for _, tc := range []struct {
		rest      string
		recursive bool
		want      string
	}{
		{"", false, `{"key":"/discovery/tok","dir":true,"nodes":[{"key":"/discovery/tok/_config","dir":true,"modifiedIndex":2,"createdIndex":2},{"key":"/discovery/tok/a1","value":"m1=http://h:1","modifiedIndex":4,"createdIndex":4},{"key":"/discovery/tok/b2","value":"m2=http://h:2","modifiedIndex":5,"createdIndex":3}],"modifiedIndex":5,"createdIndex":2}`},
		{"", true, `{"key":"/discovery/tok","dir":true,"nodes":[{"key":"/discovery/tok/_config","dir":true,"nodes":[{"key":"/discovery/tok/_config/size","value":"3","modifiedIndex":2,"createdIndex":2}],"modifiedIndex":2,"createdIndex":2},{"key":"/discovery/tok/a1","value":"m1=http://h:1","modifiedIndex":4,"createdIndex":4},{"key":"/discovery/tok/b2","value":"m2=http://h:2","modifiedIndex":5,"createdIndex":3}],"modifiedIndex":5,"createdIndex":2}`},
		{"_config/size", false, `{"key":"/discovery/tok/_config/size","value":"3","modifiedIndex":2,"createdIndex":2}`},
		{"a1", false, `{"key":"/discovery/tok/a1","value":"m1=http://h:1","modifiedIndex":4,"createdIndex":4}`},
		{"a", false, `null`},
	} {
		b, _ := json.Marshal(buildNode(tokenPath{token: "tok", rest: tc.rest}, kvs, tc.recursive))
		if string(b) != tc.want {
			t.Errorf("%q recursive=%v:\n got %s\nwant %s", tc.rest, tc.recursive, b, tc.want)
		}
	}
	if n := buildNode(tokenPath{token: "tok"}, nil, false); n != nil {
		t.Errorf("an unknown token: %+v", n)
	}
}
