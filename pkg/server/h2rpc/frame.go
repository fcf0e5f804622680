package h2rpc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"strconv"

	"golang.org/x/net/http2"
)

// clientPreface is what every HTTP/2 client sends before its first frame.
const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

const (
	frameHeaderLen = 9
	// defaultMaxFrame is the largest frame payload either side may send
	// until told otherwise (RFC 9113, SETTINGS_MAX_FRAME_SIZE).
	defaultMaxFrame = 16384
	// defaultWindow is a flow-control window before any SETTINGS or
	// WINDOW_UPDATE says otherwise.
	defaultWindow = 65535
	maxWindow     = 1<<31 - 1
)

type frameHeader struct {
	length   uint32
	typ      http2.FrameType
	flags    http2.Flags
	streamID uint32
}

// errFrameTooLarge is a connection error: the peer sent a frame larger
// than this side's SETTINGS_MAX_FRAME_SIZE.
var errFrameTooLarge = errors.New("frame larger than advertised")

// frameReader reads frames into one buffer that it reuses: a payload is
// valid only until the next call.
type frameReader struct {
	r   *bufio.Reader
	hdr [frameHeaderLen]byte
	buf []byte
	max uint32
}

func (fr *frameReader) next() (frameHeader, []byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return frameHeader{}, nil, err
	}
	h := parseFrameHeader(fr.hdr[:])
	if h.length > fr.max {
		return h, nil, errFrameTooLarge
	}
	if cap(fr.buf) < int(h.length) {
		fr.buf = make([]byte, h.length)
	}
	p := fr.buf[:h.length]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		return h, nil, err
	}
	return h, p, nil
}

// parseFrameHeader reads the frame header at the start of b.
func parseFrameHeader(b []byte) frameHeader {
	return frameHeader{
		length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		typ:      http2.FrameType(b[3]),
		flags:    http2.Flags(b[4]),
		streamID: binary.BigEndian.Uint32(b[5:]) & maxWindow,
	}
}

// errPadding is a connection error: padding longer than its frame.
var errPadding = errors.New("padding exceeds frame")

// unpad strips the padding of a DATA or HEADERS frame, and for HEADERS the
// priority fields, leaving the data or header block fragment.
func unpad(h frameHeader, p []byte) ([]byte, error) {
	if h.flags.Has(http2.FlagDataPadded) { // same bit for HEADERS
		if len(p) == 0 || int(p[0]) >= len(p) {
			return nil, errPadding
		}
		p = p[1 : len(p)-int(p[0])]
	}
	if h.typ == http2.FrameHeaders && h.flags.Has(http2.FlagHeadersPriority) {
		if len(p) < 5 {
			return nil, errPadding
		}
		p = p[5:]
	}
	return p, nil
}

func appendFrameHeader(b []byte, length int, typ http2.FrameType, flags http2.Flags, streamID uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(typ), byte(flags),
		byte(streamID>>24), byte(streamID>>16), byte(streamID>>8), byte(streamID))
}

func appendWindowUpdate(b []byte, streamID uint32, inc uint32) []byte {
	b = appendFrameHeader(b, 4, http2.FrameWindowUpdate, 0, streamID)
	return binary.BigEndian.AppendUint32(b, inc)
}

func appendRSTStream(b []byte, streamID uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 4, http2.FrameRSTStream, 0, streamID)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

func appendGoAway(b []byte, lastStreamID uint32, code http2.ErrCode, debug string) []byte {
	b = appendFrameHeader(b, 8+len(debug), http2.FrameGoAway, 0, 0)
	b = binary.BigEndian.AppendUint32(b, lastStreamID)
	b = binary.BigEndian.AppendUint32(b, uint32(code))
	return append(b, debug...)
}

func appendSettings(b []byte, settings ...http2.Setting) []byte {
	b = appendFrameHeader(b, 6*len(settings), http2.FrameSettings, 0, 0)
	for _, s := range settings {
		b = binary.BigEndian.AppendUint16(b, uint16(s.ID))
		b = binary.BigEndian.AppendUint32(b, s.Val)
	}
	return b
}

// appendHeaderBlock frames an encoded header block as HEADERS and, past
// maxFrame, CONTINUATION frames.
func appendHeaderBlock(b []byte, streamID uint32, block []byte, endStream bool, maxFrame int) []byte {
	typ := http2.FrameHeaders
	var flags http2.Flags
	if endStream {
		flags = http2.FlagHeadersEndStream
	}
	for {
		n := min(len(block), maxFrame)
		f := flags
		if n == len(block) {
			f |= http2.FlagHeadersEndHeaders
		}
		b = appendFrameHeader(b, n, typ, f, streamID)
		b = append(b, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			return b
		}
		typ, flags = http2.FrameContinuation, 0
	}
}

// The header blocks this server sends never touch HPACK's dynamic table:
// every field is a static-table reference or a literal that is not
// indexed. Encoding is then the same on every connection and in any
// order, so the common blocks are computed once.

// appendHpackInt encodes v with an n-bit prefix whose high bits are first
// (RFC 7541, section 5.1).
func appendHpackInt(b []byte, first byte, n uint, v uint64) []byte {
	limit := uint64(1)<<n - 1
	if v < limit {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(limit))
	v -= limit
	for v >= 128 {
		b = append(b, byte(v&0x7f|0x80))
		v >>= 7
	}
	return append(b, byte(v))
}

func appendHpackString(b []byte, s string) []byte {
	b = appendHpackInt(b, 0, 7, uint64(len(s)))
	return append(b, s...)
}

// appendField encodes a literal field without indexing, its name literal.
func appendField(b []byte, name, value string) []byte {
	b = append(b, 0)
	b = appendHpackString(b, name)
	return appendHpackString(b, value)
}

// Static-table indexes (RFC 7541, appendix A).
const (
	hpackStatus200   = 8
	hpackContentType = 31
)

func appendResponseHeaders(b []byte, httpStatus int) []byte {
	if httpStatus == 200 {
		b = append(b, 0x80|hpackStatus200)
	} else {
		b = appendHpackInt(b, 0, 4, 8) // :status, name from the static table
		b = appendHpackString(b, strconv.Itoa(httpStatus))
	}
	b = appendHpackInt(b, 0, 4, hpackContentType)
	return appendHpackString(b, "application/grpc")
}

var (
	responseHeaders = appendResponseHeaders(nil, 200)
	trailersOK      = appendField(nil, "grpc-status", "0")
)
