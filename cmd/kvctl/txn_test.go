package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func exitCode(err error) int {
	var ee *exitErr
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestParseCompare(t *testing.T) {
	tests := []struct {
		line    string
		wantErr string
	}{
		{`mod("key1") > "0"`, ""},
		{`m("k") < "10"`, ""},
		{`value("k") = "v w"`, ""},
		{`val("k") != ""`, ""},
		{`ver("k") != "3"`, ""},
		{`version("k") = "0"`, ""},
		{`c("k") < "10"`, ""},
		{`create("k") = "7"`, ""},
		{`lease("k") = "1a"`, ""},
		{`value("a \"quoted\" key") = "x"`, ""},
		{`mod("k") > "x"`, `invalid txn compare request: mod("k") > "x"`},
		{`lease("k") = "zz"`, "invalid txn compare request"},
		{`what("k") = "1"`, `malformed comparison: what("k") = "1" (unknown target what)`},
		{`no parens`, "malformed comparison: no parens"},
		{`mod("k") >`, `malformed comparison: mod("k") >; got mod("k") > ""`},
		{`mod(k) > "1"`, "malformed comparison: mod(k) > \"1\"; got mod(\"\")"},
		{`value("k") ~ "1"`, "unknown operator ~"},
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

func TestSplitWords(t *testing.T) {
	tests := []struct {
		line string
		want []string
		code int
	}{
		{`put k v`, []string{"put", "k", "v"}, 0},
		{`put "a key" 'v 1' plain`, []string{"put", "a key", "v 1", "plain"}, 0},
		{`put k "tab\there"`, []string{"put", "k", "tab\there"}, 0},
		{`put k 'no "escapes\t" here'`, []string{"put", "k", `no "escapes\t" here`}, 0},
		{`get "bad \q escape"`, nil, exitInvalidInput},
	}
	for _, tt := range tests {
		got, err := splitWords(tt.line)
		if code := exitCode(err); code != tt.code {
			t.Errorf("%s: exit code %d (%v), want %d", tt.line, code, err, tt.code)
			continue
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%s: %q, want %q", tt.line, got, tt.want)
		}
	}
}

func TestParseOp(t *testing.T) {
	tests := []struct {
		line string
		code int // 0 for success, -1 for an error without its own code
		msg  string
	}{
		{`put k "a value"`, 0, ""},
		{`put k v --prev-kv --lease 1f`, 0, ""},
		{`get k --prefix --limit 2 --sort-by VALUE`, 0, ""},
		{`get a z`, 0, ""},
		{`del a z --range`, 0, ""},
		{`del a z`, 0, ""}, // no 2s warning inside a txn
		{`get`, -1, "invalid txn compare request: get"},
		{`watch k`, -1, "invalid txn request: watch k"},
		{`put k v --bogus`, -1, "invalid txn request: put k v --bogus"},
		{`put k`, exitBadArgs, putUsage},
		{`put k v --lease zz`, exitBadArgs, "bad lease ID"},
		{`get k --prefix --from-key`, exitBadArgs, "cannot be set at the same time"},
		{`get k --consistency x`, exitBadFeature, `unknown consistency flag "x"`},
		{`get k --sort-by NAME`, exitBadFeature, "bad sort target NAME"},
		{`del a b c`, exitBadArgs, "del command needs one argument"},
	}
	for _, tt := range tests {
		_, err := parseOp(tt.line, io.Discard)
		if code := exitCode(err); code != tt.code || (err != nil && !strings.Contains(err.Error(), tt.msg)) {
			t.Errorf("%s: exit code %d, error %v; want %d %q", tt.line, code, err, tt.code, tt.msg)
		}
	}
}

func TestReadTxn(t *testing.T) {
	var prompts []string
	prompt := func(p string) { prompts = append(prompts, p) }
	in := "mod(\"a\") > \"0\"\n  value(\"b\") = \"x\"  \n\nput a 1\nget a\n\ndel a\n\n"
	txn, err := readTxn(bufio.NewReader(strings.NewReader(in)), io.Discard, prompt)
	if err != nil {
		t.Fatal(err)
	}
	if len(txn.cmps) != 2 || len(txn.then) != 2 || len(txn.els) != 1 {
		t.Fatalf("sections: %d compares, %d then, %d else", len(txn.cmps), len(txn.then), len(txn.els))
	}
	want := "compares:|success requests (get, put, del):|failure requests (get, put, del):"
	if got := strings.Join(prompts, "|"); got != want {
		t.Fatalf("prompts %q, want %q", got, want)
	}

	bad := []struct {
		in   string
		code int
		msg  string
	}{
		{"", exitInvalidInput, "EOF"},
		{"mod(\"a\") > \"0\"\n\nput a 1", exitInvalidInput, "EOF"},
		{"mod(\"a\") > \"0\"\n\nput a 1\n\n", exitInvalidInput, "EOF"},
		{"bogus\n\n\n\n", exitInvalidInput, "malformed comparison: bogus"},
		{"\nput\n\n\n", exitInvalidInput, "invalid txn compare request: put"},
		{"\n\nget a b c --prefix\n\n", exitBadArgs, "too many arguments"},
	}
	for _, tt := range bad {
		_, err := readTxn(bufio.NewReader(strings.NewReader(tt.in)), io.Discard, func(string) {})
		if code := exitCode(err); code != tt.code || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("input %q: exit code %d, error %v; want %d %q", tt.in, code, err, tt.code, tt.msg)
		}
	}
}
