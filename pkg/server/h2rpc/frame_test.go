package h2rpc

import (
	"bufio"
	"bytes"
	"fmt"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "1H", want: time.Hour},
		{in: "15M", want: 15 * time.Minute},
		{in: "99999999S", want: 99999999 * time.Second},
		{in: "250m", want: 250 * time.Millisecond},
		{in: "7u", want: 7 * time.Microsecond},
		{in: "3n", want: 3},
		{in: "S", bad: true},
		{in: "123456789S", bad: true}, // nine digits
		{in: "12x", bad: true},
		{in: "1-S", bad: true},
	}
	for _, tt := range tests {
		got, err := parseTimeout(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v, bad=%v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

// The blocks this server encodes by hand must decode as HPACK, on a
// decoder that has seen other blocks before (no dynamic-table use).
func TestHeaderBlocksDecode(t *testing.T) {
	long := string(bytes.Repeat([]byte("x"), 300)) // past the 7-bit length prefix
	var block []byte
	block = appendResponseHeaders(block, 200)
	block = append(block, trailersOK...)
	block = appendField(block, "grpc-message", long)
	block = appendResponseHeaders(block, 415)
	want := fmt.Sprint([]hpack.HeaderField{
		{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"},
		{Name: "grpc-status", Value: "0"}, {Name: "grpc-message", Value: long},
		{Name: ":status", Value: "415"}, {Name: "content-type", Value: "application/grpc"},
	})
	dec := hpack.NewDecoder(4096, nil)
	for range 2 {
		got, err := dec.DecodeFull(block)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != want {
			t.Fatalf("decoded %v\nwant %v", got, want)
		}
	}
}

func TestEncodeGRPCMessage(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":  "plain text",
		"50% off":     "50%25 off",
		"line\nbreak": "line%0Abreak",
		"é":           "%C3%A9",
	} {
		if got := encodeGRPCMessage(in); got != want {
			t.Errorf("encodeGRPCMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

// A header block longer than a frame goes out as HEADERS then
// CONTINUATION, and frames read back whole, padding removed.
func TestFramesReadBack(t *testing.T) {
	block := bytes.Repeat([]byte{0x88}, 40)
	var b []byte
	b = appendHeaderBlock(b, 3, block, true, 16)
	padded := []byte{2, 'h', 'i', 0, 0}
	b = appendFrameHeader(b, len(padded), http2.FrameData, http2.FlagDataPadded|http2.FlagDataEndStream, 3)
	b = append(b, padded...)
	b = appendWindowUpdate(b, 0, 1000)
	fr := frameReader{r: bufio.NewReader(bytes.NewReader(b)), max: defaultMaxFrame}
	var got []string
	for {
		h, p, err := fr.next()
		if err != nil {
			break
		}
		if h.typ == http2.FrameData {
			if p, err = unpad(h, p); err != nil {
				t.Fatal(err)
			}
		}
		got = append(got, fmt.Sprintf("%v/%d/%#x/%d", h.typ, h.streamID, uint8(h.flags), len(p)))
		if h.typ == http2.FrameData && string(p) != "hi" {
			t.Fatalf("data %q", p)
		}
	}
	want := []string{"HEADERS/3/0x1/16", "CONTINUATION/3/0x0/16", "CONTINUATION/3/0x4/8", "DATA/3/0x9/2", "WINDOW_UPDATE/0/0x0/4"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("frames %v\nwant %v", got, want)
	}
}
