package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDrawBar(t *testing.T) {
	cases := []struct {
		cur, total int64
		width      int
		finished   bool
		want       string
	}{
		{0, 10, 12, false, "[__________]"},
		{1, 10, 12, false, "[>_________]"},
		{4, 10, 12, false, "[--->______]"},
		{10, 10, 12, false, "[--------->]"},
		{10, 10, 12, true, "[----------]"},
		{15, 10, 12, true, "[----------]"},
	}
	for _, c := range cases {
		if got := drawBar(c.cur, c.total, c.width, c.finished); got != c.want {
			t.Errorf("drawBar(%d, %d, %d, %v) = %q, want %q", c.cur, c.total, c.width, c.finished, got, c.want)
		}
	}
}

func TestProgressOffTerminal(t *testing.T) {
	var stderr bytes.Buffer
	b := startProgress(&globals{stderr: &stderr}, 10)
	b.Add(5)
	b.Finish()
	if b != nil || stderr.Len() != 0 {
		t.Fatalf("a bar was drawn off a terminal: %q", stderr.String())
	}
}

func TestResidentMemory(t *testing.T) {
	cases := []struct {
		body     string
		want     float64
		wantSaid string
	}{
		{"# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.33431296e+08\n", 1.33431296e+08, ""},
		{"go_goroutines 12\n", 0, "could not find: process_resident_memory_bytes\n"},
		{"process_resident_memory_bytes lots\n", 0, `parse error: strconv.ParseFloat: parsing "lots": invalid syntax` + "\n"},
	}
	for _, c := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/metrics" {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write([]byte(c.body))
		}))
		var stdout bytes.Buffer
		got := residentMemory(&globals{stdout: &stdout}, strings.TrimPrefix(srv.URL, "http://"))
		srv.Close()
		if got != c.want || stdout.String() != c.wantSaid {
			t.Errorf("body %q: %v and %q, want %v and %q", c.body, got, stdout.String(), c.want, c.wantSaid)
		}
	}
}
