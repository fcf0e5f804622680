package h2rpc

import (
	"context"
	"errors"
	"io"

	"golang.org/x/net/http2"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// maxChunk bounds what one message write takes of the windows at a time.
// A large answer then passes through the connection's buffer a piece at a
// time, and the buffer, kept between writes, stays small: copying in
// pieces of a megabyte made a new buffer per piece, and ten readers of a
// 100 MB answer raised the peak RSS by half.
const maxChunk = 64 << 10

// serveUnary runs a unary call's handler and answers it.
func (st *stream) serveUnary() {
	m := st.method
	resp, err := m.unary(m.impl, st.ctx, st.decodeRequest, st.c.srv.unaryInt)
	if err != nil {
		st.end(toStatus(err))
		return
	}
	data, err := st.c.srv.opts.Codec.Marshal(resp)
	if err != nil {
		st.end(status.Newf(codes.Internal, "grpc: error while marshaling: %v", err))
		return
	}
	err = st.writeMessage(data, true)
	data.Free()
	if err != nil {
		st.c.finish(st)
	}
}

// decodeRequest is the unary handler's decoder: exactly one message.
func (st *stream) decodeRequest(v any) error {
	msg, rest, ok, serr := cutMessage(st.partial, st.c.srv.opts.MaxRecvMsgSize)
	if serr != nil {
		return serr.Err()
	}
	if !ok || len(rest) != 0 {
		return status.Error(codes.Internal, "h2rpc: the request is not one whole message")
	}
	return st.c.srv.opts.Codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, v)
}

// serveStream runs a streaming call's handler and ends the stream.
func (st *stream) serveStream() {
	m := st.method
	info := &grpc.StreamServerInfo{FullMethod: m.fullName, IsClientStream: m.stream.ClientStreams, IsServerStream: m.stream.ServerStreams}
	var err error
	if si := st.c.srv.streamInt; si != nil {
		err = si(m.impl, st, info, m.stream.Handler)
	} else {
		err = m.stream.Handler(m.impl, st)
	}
	st.end(toStatus(err))
}

// toStatus is grpc-go's reading of a handler's error.
func toStatus(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if s, ok := status.FromError(err); ok {
		return s
	}
	return status.FromContextError(err)
}

// end sends the call's status, unless the client already reset it.
func (st *stream) end(s *status.Status) {
	defer st.c.finish(st)
	maxFrame, ok := st.c.liveFrame(st)
	if !ok {
		return
	}
	b := st.c.w.lock()
	*b = st.appendStatus(*b, s, !st.headerSent, maxFrame)
	*b = st.rstIfOpen(*b)
	st.c.w.flush()
}

// writeMessage sends one length-prefixed message as flow control allows,
// headers first if none went yet, and with last the OK trailers behind it.
func (st *stream) writeMessage(data mem.BufferSlice, last bool) error {
	src := msgSource{bufs: data}
	n := data.Len()
	src.prefix = [5]byte{0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	for left := 5 + n; left > 0; {
		got, maxFrame, err := st.c.acquire(st, min(left, maxChunk))
		if err != nil {
			return err
		}
		left -= got
		b := st.c.w.lock()
		if !st.headerSent {
			st.headerSent = true
			*b = appendHeaderBlock(*b, st.id, st.headerBlock(), false, maxFrame)
		}
		for got > 0 {
			k := min(got, maxFrame)
			*b = appendFrameHeader(*b, k, http2.FrameData, 0, st.id)
			*b = src.appendNext(*b, k)
			got -= k
		}
		if left == 0 && last {
			*b = st.appendStatus(*b, okStatus, false, maxFrame)
			*b = st.rstIfOpen(*b)
		}
		st.c.w.flush()
	}
	if last {
		st.c.finish(st)
	}
	return nil
}

var okStatus = status.New(codes.OK, "")

// headerBlock is the answer's header block: the common one, unless the
// handler set metadata of its own.
func (st *stream) headerBlock() []byte {
	if len(st.header) == 0 {
		return responseHeaders
	}
	return appendMD(append([]byte(nil), responseHeaders...), st.header)
}

// msgSource hands out a message's bytes, its prefix first, frame by frame.
type msgSource struct {
	prefix [5]byte
	pos    int // into prefix, then past it
	bufs   mem.BufferSlice
	i, off int
}

func (s *msgSource) appendNext(b []byte, k int) []byte {
	for k > 0 {
		if s.pos < len(s.prefix) {
			c := min(k, len(s.prefix)-s.pos)
			b = append(b, s.prefix[s.pos:s.pos+c]...)
			s.pos += c
			k -= c
			continue
		}
		d := s.bufs[s.i].ReadOnlyData()[s.off:]
		c := min(k, len(d))
		b = append(b, d[:c]...)
		s.off += c
		k -= c
		if s.off == len(s.bufs[s.i].ReadOnlyData()) {
			s.i, s.off = s.i+1, 0
		}
	}
	return b
}

// The grpc.ServerStream of a streaming call.

func (st *stream) Context() context.Context { return st.ctx }

var errHeaderSent = errors.New("h2rpc: headers already sent")

func (st *stream) SetHeader(md metadata.MD) error {
	if st.headerSent {
		return errHeaderSent
	}
	st.header = metadata.Join(st.header, md)
	return nil
}

func (st *stream) SendHeader(md metadata.MD) error {
	if err := st.SetHeader(md); err != nil {
		return err
	}
	maxFrame, ok := st.c.liveFrame(st)
	if !ok {
		return status.FromContextError(context.Canceled).Err()
	}
	st.headerSent = true
	b := st.c.w.lock()
	*b = appendHeaderBlock(*b, st.id, st.headerBlock(), false, maxFrame)
	st.c.w.flush()
	return nil
}

func (st *stream) SetTrailer(md metadata.MD) { st.trailer = metadata.Join(st.trailer, md) }

func (st *stream) SendMsg(m any) error {
	data, err := st.c.srv.opts.Codec.Marshal(m)
	if err != nil {
		return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
	}
	err = st.writeMessage(data, false)
	data.Free()
	if err != nil {
		if ctxErr := st.ctx.Err(); ctxErr != nil {
			return status.FromContextError(ctxErr).Err()
		}
		return status.FromContextError(context.Canceled).Err()
	}
	return nil
}

func (st *stream) RecvMsg(m any) error {
	for {
		st.rmu.Lock()
		if len(st.msgs) > 0 {
			msg := st.msgs[0]
			st.msgs[0] = nil
			st.msgs = st.msgs[1:]
			st.rmu.Unlock()
			st.c.consumed(st, len(msg)+5)
			return st.c.srv.opts.Codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, m)
		}
		recvErr, done := st.recvErr, st.recvDone
		st.rmu.Unlock()
		if recvErr != nil {
			return recvErr.Err()
		}
		if done {
			return io.EOF
		}
		select {
		case <-st.recvWake:
		case <-st.ctx.Done():
			return status.FromContextError(st.ctx.Err()).Err()
		}
	}
}

// marshalStatus encodes a status with details for grpc-status-details-bin.
func marshalStatus(p *spb.Status) ([]byte, error) { return proto.Marshal(p) }
