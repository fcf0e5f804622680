package h2rpc

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// stream is one call. The reader fills in its headers and request data;
// its handler runs on a worker (unary) or a goroutine of its own
// (streaming).
type stream struct {
	c  *conn
	id uint32

	// Set while the headers are decoded, by the reader.
	path        string
	grpcType    bool
	contentType string
	timeout     time.Duration
	md          metadata.MD
	early       *status.Status // the call is answered with this, unheard
	method      *method

	ctx    context.Context
	cancel context.CancelFunc

	// Request data, the reader's until the call is dispatched (unary) or
	// under rmu (streaming).
	rmu         sync.Mutex
	partial     []byte   // bytes of a message not yet whole
	msgs        [][]byte // whole messages not yet received by the handler
	recvDone    bool     // the client half-closed
	recvErr     *status.Status
	recvWake    chan struct{}
	recvUnacked uint32 // window taken by messages handled, not yet given back

	// Under c.mu.
	sendWindow  int64
	sendBlocked bool
	wasReset    bool
	sendReady   chan struct{}

	// The handler's.
	headerSent bool
	header     metadata.MD
	trailer    metadata.MD
}

func newStream(c *conn, id uint32, endStream bool) *stream {
	return &stream{c: c, id: id, recvDone: endStream}
}

// onHeader takes one decoded field.
func (st *stream) onHeader(name, value string) {
	switch name {
	case ":path":
		st.path = value
	case ":method":
		if value != "POST" {
			st.refuse(codes.Internal, fmt.Sprintf("h2rpc: method %q is not POST", value))
		}
	case "content-type":
		st.contentType = value
		st.grpcType = value == "application/grpc" || strings.HasPrefix(value, "application/grpc+") ||
			strings.HasPrefix(value, "application/grpc;")
	case "grpc-timeout":
		d, err := parseTimeout(value)
		if err != nil {
			st.refuse(codes.Internal, err.Error())
		}
		st.timeout = d
	case "grpc-encoding":
		if value != "identity" {
			st.refuse(codes.Unimplemented, fmt.Sprintf("grpc: Decompressor is not installed for grpc-encoding %q", value))
		}
	case "te", "user-agent", "grpc-accept-encoding", "grpc-message-type", ":scheme", ":authority", "connection":
	default:
		if strings.HasPrefix(name, ":") || strings.HasPrefix(name, "grpc-") {
			return
		}
		if strings.HasSuffix(name, "-bin") {
			b, err := decodeBinaryHeader(value)
			if err != nil {
				st.refuse(codes.Internal, fmt.Sprintf("h2rpc: bad binary header %s: %v", name, err))
				return
			}
			value = string(b)
		}
		if st.md == nil {
			st.md = metadata.MD{}
		}
		st.md[name] = append(st.md[name], value)
	}
}

func (st *stream) refuse(code codes.Code, msg string) {
	if st.early == nil {
		st.early = status.New(code, msg)
	}
}

func decodeBinaryHeader(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}

// timeoutUnits are grpc-timeout's units by their letter.
var timeoutUnits = [256]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second,
	'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}

// parseTimeout reads grpc-timeout: up to 8 digits and a unit.
func parseTimeout(v string) (time.Duration, error) {
	if len(v) < 2 || len(v) > 9 {
		return 0, fmt.Errorf("h2rpc: bad grpc-timeout %q", v)
	}
	var n int64
	for _, ch := range v[:len(v)-1] {
		if ch < '0' || ch > '9' {
			return 0, fmt.Errorf("h2rpc: bad grpc-timeout %q", v)
		}
		n = n*10 + int64(ch-'0')
	}
	unit := timeoutUnits[v[len(v)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("h2rpc: bad grpc-timeout unit %q", v)
	}
	return time.Duration(n) * unit, nil
}

// check refuses a call whose headers alone show it cannot be served.
func (st *stream) check() {
	if st.early == nil && !st.grpcType {
		// grpc-go answers such a request with HTTP 415 (see answerEarly).
		st.refuse(codes.Internal, fmt.Sprintf("transport: received unexpected content-type %q", st.contentType))
	}
	if st.early == nil {
		if st.method = st.c.srv.methods[st.path]; st.method == nil {
			st.early = unknownMethod(st.path)
		}
	}
}

// prepare gives the call its context, before anyone else can see it.
func (st *stream) prepare() {
	ctx := st.c.base
	if st.md != nil {
		ctx = metadata.NewIncomingContext(ctx, st.md)
	}
	if st.timeout > 0 {
		st.ctx, st.cancel = context.WithTimeout(ctx, st.timeout)
	} else {
		st.ctx, st.cancel = context.WithCancel(ctx)
	}
	if st.method.stream != nil {
		st.recvWake = make(chan struct{}, 1)
	}
}

// start runs the call once it is registered for its data.
func (st *stream) start() {
	if st.method.stream != nil {
		go st.serveStream() // owned by the connection: its close cancels ctx
		return
	}
	if st.recvDone {
		st.c.srv.dispatch(st) // no request message; the handler's decode says so
	}
}

func unknownMethod(path string) *status.Status {
	service, name, ok := splitMethod(path)
	if !ok {
		return status.Newf(codes.Unimplemented, "malformed method name: %q", path)
	}
	return status.Newf(codes.Unimplemented, "unknown method %v for service %v", name, service)
}

// onData takes request bytes from the reader.
func (st *stream) onData(data []byte, end bool) {
	if st.method.stream == nil {
		st.onUnaryData(data, end)
		return
	}
	st.rmu.Lock()
	if st.recvDone || st.recvErr != nil {
		st.rmu.Unlock()
		return // past the client's own end of stream, or a refused message
	}
	st.partial = append(st.partial, data...)
	for st.recvErr == nil {
		msg, rest, ok, err := cutMessage(st.partial, st.c.srv.opts.MaxRecvMsgSize)
		if err != nil {
			st.recvErr = err
			break
		}
		if !ok {
			break
		}
		st.msgs = append(st.msgs, msg)
		st.partial = rest
	}
	if end {
		st.recvDone = true
		if len(st.partial) > 0 && st.recvErr == nil {
			st.recvErr = status.New(codes.Internal, "h2rpc: stream ended inside a message")
		}
	}
	st.rmu.Unlock()
	st.wakeReceiver()
}

// onUnaryData gathers the request; the last frame dispatches the call.
// A message over the limit is refused as soon as its length is known.
func (st *stream) onUnaryData(data []byte, end bool) {
	if st.recvDone {
		return
	}
	if st.partial == nil && end {
		st.partial = make([]byte, 0, len(data)) // the common case: one frame, sized once
	}
	st.partial = append(st.partial, data...)
	if _, _, _, err := cutMessage(st.partial, st.c.srv.opts.MaxRecvMsgSize); err != nil {
		st.recvDone = true
		st.partial = nil
		st.c.abort(st, err)
		return
	}
	if end {
		st.recvDone = true
		st.c.srv.dispatch(st)
	}
}

// cutMessage takes the first length-prefixed message off b.
func cutMessage(b []byte, limit int) (msg, rest []byte, ok bool, err *status.Status) {
	if len(b) < 5 {
		return nil, b, false, nil
	}
	if b[0] != 0 {
		return nil, b, false, status.New(codes.Internal, "grpc: compressed flag set with identity or empty encoding")
	}
	n := int(uint32(b[1])<<24 | uint32(b[2])<<16 | uint32(b[3])<<8 | uint32(b[4]))
	if n > limit {
		return nil, b, false, status.Newf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, limit)
	}
	if len(b)-5 < n {
		return nil, b, false, nil
	}
	return b[5 : 5+n], b[5+n:], true, nil
}

// cancelCall ends a call the client or the connection gave up on.
func (st *stream) cancelCall() {
	st.cancel()
	st.wakeReceiver()
}

// wakeSender and wakeReceiver nudge a handler waiting for window or
// for data; one pending nudge is enough.
func (st *stream) wakeSender() {
	if st.sendBlocked {
		st.sendBlocked = false
		nudge(st.sendReady)
	}
}

func (st *stream) wakeReceiver() {
	if st.recvWake != nil {
		nudge(st.recvWake)
	}
}

func nudge(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// appendStatus encodes the call's end: trailers after headers, or a
// trailers-only answer when nothing was sent yet.
func (st *stream) appendStatus(b []byte, s *status.Status, trailersOnly bool, maxFrame int) []byte {
	if !trailersOnly && s.Code() == codes.OK && len(st.trailer) == 0 {
		return appendHeaderBlock(b, st.id, trailersOK, true, maxFrame) // the common end
	}
	block := make([]byte, 0, 64)
	if trailersOnly && !st.grpcType {
		block = appendResponseHeaders(block, 415)
	} else if trailersOnly {
		block = append(block, responseHeaders...)
		block = appendMD(block, st.header)
	}
	if s.Code() == codes.OK {
		block = append(block, trailersOK...)
	} else {
		block = appendField(block, "grpc-status", fmt.Sprint(int(s.Code())))
		block = appendField(block, "grpc-message", encodeGRPCMessage(s.Message()))
		if p := s.Proto(); len(p.GetDetails()) > 0 {
			if raw, err := marshalStatus(p); err == nil {
				block = appendField(block, "grpc-status-details-bin", base64.RawStdEncoding.EncodeToString(raw))
			}
		}
	}
	block = appendMD(block, st.trailer)
	return appendHeaderBlock(b, st.id, block, true, maxFrame)
}

func appendMD(b []byte, md metadata.MD) []byte {
	for k, vs := range md {
		for _, v := range vs {
			if strings.HasSuffix(k, "-bin") {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			}
			b = appendField(b, k, v)
		}
	}
	return b
}

// encodeGRPCMessage percent-encodes what the gRPC spec asks of
// grpc-message: bytes outside printable ASCII, and '%'.
func encodeGRPCMessage(msg string) string {
	clean := true
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return msg
	}
	var sb strings.Builder
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c > 0x7e || c == '%' {
			fmt.Fprintf(&sb, "%%%02X", c)
		} else {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// rstIfOpen tells a client still sending on a finished stream to stop.
func (st *stream) rstIfOpen(b []byte) []byte {
	if st.method != nil && st.method.stream != nil {
		st.rmu.Lock()
		done := st.recvDone
		st.rmu.Unlock()
		if !done {
			return appendRSTStream(b, st.id, http2.ErrCodeNo)
		}
	}
	return b
}
