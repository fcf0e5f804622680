package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestParseCompare(t *testing.T) {
	tests := []struct {
		line    string
		wantErr string
	}{
		{`mod("key1") > "0"`, ""},
		{`value("k") = "v w"`, ""},
		{`ver("k") != "3"`, ""},
		{`c("k") < "10"`, ""},
		{`lease("k") = "1a"`, ""},
		{`mod("k") > "x"`, "invalid txn compare request"},
		{`what("k") = "1"`, "unknown target what"},
		{`no parens`, "malformed comparison"},
		{`mod("k") >`, "malformed comparison"},
	}
	for _, tt := range tests {
		_, err := parseCompare(tt.line)
		if tt.wantErr == "" && err != nil {
			t.Errorf("%s: %v", tt.line, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: err %v, want %q", tt.line, err, tt.wantErr)
		}
	}
}

func TestParseOpAndSections(t *testing.T) {
	tests := []struct {
		line    string
		wantErr bool
	}{
		{`put k "a value"`, false},
		{`put k v --prev-kv`, false},
		{`get k --prefix --limit 2`, false},
		{`del a z --range`, false},
		{`get`, true},
		{`watch k`, true},
		{`put k v --bogus`, true},
	}
	for _, tt := range tests {
		if _, err := parseOp(tt.line); (err != nil) != tt.wantErr {
			t.Errorf("%s: err %v", tt.line, err)
		}
	}
	in := bufio.NewReader(strings.NewReader("mod(\"a\") > \"0\"\n\nput a 1\nget a\n\ndel a\n\n"))
	cmps, err := readCompares(in)
	if err != nil || len(cmps) != 1 {
		t.Fatalf("compares: %d %v", len(cmps), err)
	}
	then, err := readOps(in)
	if err != nil || len(then) != 2 {
		t.Fatalf("success ops: %d %v", len(then), err)
	}
	els, err := readOps(in)
	if err != nil || len(els) != 1 {
		t.Fatalf("failure ops: %d %v", len(els), err)
	}
	if _, err := readOps(bufio.NewReader(strings.NewReader("put a 1"))); err == nil {
		t.Fatal("input ending without the closing empty line was accepted")
	}
}

func TestSplitArgs(t *testing.T) {
	got := splitArgs(`put "a key" 'v 1' plain`)
	want := []string{"put", "a key", "v 1", "plain"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("splitArgs = %q, want %q", got, want)
	}
}

func TestHexBytes(t *testing.T) {
	if got := hexBytes([]byte("a\x00")); got != `\x61\x00` {
		t.Fatalf("hexBytes = %s", got)
	}
}
