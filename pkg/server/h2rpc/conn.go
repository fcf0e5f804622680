package h2rpc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

const (
	// connWindow is how much request data a client may have in flight on
	// a connection; it is given back as soon as it is read, since each
	// stream's own window bounds what waits unread.
	connWindow = 16 << 20
	// maxHeaderString bounds one decoded header name or value.
	maxHeaderString = 1 << 20
	readBufferSize  = 32 << 10
	prefaceTimeout  = 10 * time.Second
)

// conn is one client connection. Its reader goroutine (serve) owns frame
// parsing and header decoding; handlers write through w, and flow control
// and the stream table are shared under mu.
type conn struct {
	srv *Server
	nc  net.Conn
	// raw, for a TCP connection, is its socket, which the reader reads
	// directly (readraw.go); the reader then also closes nc, on its way
	// out, and done tells it to go.
	raw  syscall.RawConn
	done atomic.Bool
	fr   frameReader
	w    connWriter
	dec  *hpack.Decoder
	base context.Context

	// Header decoding state, the reader's alone.
	decoding     *stream // the stream whose header block is being read
	continuing   uint32  // stream ID while a header block awaits CONTINUATION
	recvUnacked  uint32  // connection-level bytes read but not yet given back
	streamWindow uint32  // the window each new stream gives the client

	mu             sync.Mutex
	streams        map[uint32]*stream
	sendWindow     int64 // what the client lets this side send, connection-wide
	peerInitWindow int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerMaxFrame   int
	lastStreamID   uint32
	draining       bool
	closed         bool
	closeOnce      sync.Once
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv:            s,
		nc:             nc,
		streams:        map[uint32]*stream{},
		sendWindow:     defaultWindow,
		peerInitWindow: defaultWindow,
		peerMaxFrame:   defaultMaxFrame,
	}
	c.w.nc = nc
	c.raw = rawConn(nc)
	c.fr = frameReader{r: bufio.NewReaderSize(nc, readBufferSize), max: defaultMaxFrame}
	c.dec = hpack.NewDecoder(4096, c.onField)
	c.dec.SetMaxStringLength(maxHeaderString)
	// Twice the largest message: see consumed.
	win := 2 * (s.opts.MaxRecvMsgSize + 5)
	c.streamWindow = uint32(min(max(win, defaultWindow), maxWindow))
	p := &peer.Peer{Addr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr()}
	if s.opts.AuthInfo != nil {
		p.AuthInfo = s.opts.AuthInfo(nc)
	}
	c.base = peer.NewContext(context.Background(), p)
	return c
}

// serve reads frames until the connection fails or closes.
func (c *conn) serve() {
	err := c.readLoop()
	c.close(err)
	if c.raw != nil {
		c.nc.Close()
		c.srv.forget(c)
	}
}

func (c *conn) readLoop() error {
	_ = c.nc.SetReadDeadline(time.Now().Add(prefaceTimeout))
	var preface [len(clientPreface)]byte
	if _, err := io.ReadFull(c.fr.r, preface[:]); err != nil {
		return fmt.Errorf("read preface: %w", err)
	}
	if string(preface[:]) != clientPreface {
		return errors.New("bad client preface")
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	if c.done.Load() {
		// Closed while the preface was read: the deadline just cleared
		// was the one meant to stop this reader.
		return net.ErrClosed
	}
	b := c.w.lock()
	*b = appendSettings(*b,
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: c.streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 16 << 20})
	*b = appendWindowUpdate(*b, 0, connWindow-defaultWindow)
	c.w.flush()
	if c.raw != nil {
		return c.readFramesRaw()
	}
	for {
		if c.fr.r.Buffered() == 0 {
			// About to wait for the client: what the reader queued must
			// not wait for long.
			c.w.flushSoon()
		}
		h, p, err := c.fr.next()
		if err != nil {
			if errors.Is(err, errFrameTooLarge) {
				c.goAway(http2.ErrCodeFrameSize, err.Error())
			}
			return err
		}
		if err := c.handle(h, p); err != nil {
			c.goAway(http2.ErrCodeProtocol, err.Error())
			return err
		}
	}
}

// handle acts on one frame; an error is a connection error.
func (c *conn) handle(h frameHeader, p []byte) error {
	if c.continuing != 0 && (h.typ != http2.FrameContinuation || h.streamID != c.continuing) {
		return errors.New("header block interrupted")
	}
	switch h.typ {
	case http2.FrameData:
		return c.onData(h, p)
	case http2.FrameHeaders:
		return c.onHeaders(h, p)
	case http2.FrameContinuation:
		if c.continuing == 0 {
			return errors.New("CONTINUATION without HEADERS")
		}
		return c.onHeaderFragment(h.flags.Has(http2.FlagContinuationEndHeaders), p)
	case http2.FrameSettings:
		return c.onSettings(h, p)
	case http2.FramePing:
		return c.onPing(h, p)
	case http2.FrameWindowUpdate:
		return c.onWindowUpdate(h, p)
	case http2.FrameRSTStream:
		if len(p) != 4 {
			return errors.New("bad RST_STREAM")
		}
		c.reset(h.streamID)
	case http2.FramePushPromise:
		return errors.New("client sent PUSH_PROMISE")
	}
	// PRIORITY, GOAWAY (the client closes the connection itself) and
	// unknown frame types need nothing.
	return nil
}

func (c *conn) onSettings(h frameHeader, p []byte) error {
	if h.flags.Has(http2.FlagSettingsAck) {
		return nil
	}
	if len(p)%6 != 0 || h.streamID != 0 {
		return errors.New("bad SETTINGS")
	}
	for ; len(p) > 0; p = p[6:] {
		id, val := http2.SettingID(binary.BigEndian.Uint16(p)), binary.BigEndian.Uint32(p[2:])
		switch id {
		case http2.SettingInitialWindowSize:
			if val > maxWindow {
				return errors.New("initial window too large")
			}
			c.setPeerWindow(int64(val))
		case http2.SettingMaxFrameSize:
			if val < defaultMaxFrame || val > 1<<24-1 {
				return errors.New("bad max frame size")
			}
			c.mu.Lock()
			c.peerMaxFrame = int(val)
			c.mu.Unlock()
		}
	}
	b := c.w.lock()
	*b = appendFrameHeader(*b, 0, http2.FrameSettings, http2.FlagSettingsAck, 0)
	c.w.queue()
	return nil
}

// setPeerWindow applies a new initial window to every open stream, as
// RFC 9113 section 6.9.2 asks.
func (c *conn) setPeerWindow(v int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delta := v - c.peerInitWindow
	c.peerInitWindow = v
	for _, st := range c.streams {
		st.sendWindow += delta
		if delta > 0 {
			st.wakeSender()
		}
	}
}

func (c *conn) onPing(h frameHeader, p []byte) error {
	if len(p) != 8 || h.streamID != 0 {
		return errors.New("bad PING")
	}
	if h.flags.Has(http2.FlagPingAck) {
		return nil
	}
	b := c.w.lock()
	*b = appendFrameHeader(*b, 8, http2.FramePing, http2.FlagPingAck, 0)
	*b = append(*b, p...)
	c.w.queue()
	return nil
}

func (c *conn) onWindowUpdate(h frameHeader, p []byte) error {
	if len(p) != 4 {
		return errors.New("bad WINDOW_UPDATE")
	}
	inc := int64(binary.BigEndian.Uint32(p) & maxWindow)
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.streamID == 0 {
		c.sendWindow += inc
		for _, st := range c.streams {
			st.wakeSender()
		}
		return nil
	}
	if st := c.streams[h.streamID]; st != nil {
		st.sendWindow += inc
		st.wakeSender()
	}
	return nil
}

func (c *conn) onData(h frameHeader, p []byte) error {
	if h.streamID == 0 {
		return errors.New("DATA on stream 0")
	}
	c.giveBack(h.length)
	data, err := unpad(h, p)
	if err != nil {
		return err
	}
	c.mu.Lock()
	st := c.streams[h.streamID]
	c.mu.Unlock()
	if st == nil {
		return nil // a stream already answered or reset: drop what it sends
	}
	st.onData(data, h.flags.Has(http2.FlagDataEndStream))
	return nil
}

// giveBack returns connection-level window to the client once half of it
// has been read.
func (c *conn) giveBack(n uint32) {
	c.recvUnacked += n
	if c.recvUnacked < connWindow/2 {
		return
	}
	b := c.w.lock()
	*b = appendWindowUpdate(*b, 0, c.recvUnacked)
	c.w.queue()
	c.recvUnacked = 0
}

func (c *conn) onHeaders(h frameHeader, p []byte) error {
	frag, err := unpad(h, p)
	if err != nil {
		return err
	}
	id := h.streamID
	c.mu.Lock()
	fresh := id%2 == 1 && id > c.lastStreamID
	if fresh {
		c.lastStreamID = id
	}
	c.mu.Unlock()
	if !fresh {
		return fmt.Errorf("HEADERS on stream %d, not a new client stream", id)
	}
	c.decoding = newStream(c, id, h.flags.Has(http2.FlagHeadersEndStream))
	return c.onHeaderFragment(h.flags.Has(http2.FlagHeadersEndHeaders), frag)
}

func (c *conn) onHeaderFragment(end bool, frag []byte) error {
	if _, err := c.dec.Write(frag); err != nil {
		return fmt.Errorf("decode headers: %w", err)
	}
	if !end {
		c.continuing = c.decoding.id
		return nil
	}
	c.continuing = 0
	if err := c.dec.Close(); err != nil {
		return fmt.Errorf("decode headers: %w", err)
	}
	st := c.decoding
	c.decoding = nil
	c.open(st)
	return nil
}

// onField is the HPACK decoder's callback, for the stream being decoded.
func (c *conn) onField(f hpack.HeaderField) {
	if c.decoding != nil {
		c.decoding.onHeader(f.Name, f.Value)
	}
}

// open starts a stream whose headers are complete: refuses it, answers it
// at once with an error, or registers it for its data.
func (c *conn) open(st *stream) {
	st.check()
	if st.early != nil {
		c.answerEarly(st)
		return
	}
	st.prepare()
	c.mu.Lock()
	if c.draining || c.closed {
		c.mu.Unlock()
		st.cancel()
		b := c.w.lock()
		*b = appendRSTStream(*b, st.id, http2.ErrCodeRefusedStream)
		c.w.queue()
		return
	}
	st.sendWindow = c.peerInitWindow
	c.streams[st.id] = st
	c.mu.Unlock()
	st.start()
}

// answerEarly sends the status of a call refused on its headers alone.
// Data the client still sends for it finds no stream and is dropped.
func (c *conn) answerEarly(st *stream) {
	maxFrame := c.maxFrame()
	b := c.w.lock()
	*b = st.appendStatus(*b, st.early, true, maxFrame)
	if !st.recvDone {
		*b = appendRSTStream(*b, st.id, http2.ErrCodeNo)
	}
	c.w.flush()
}

// abort ends a unary call before its handler runs: its request was bad.
func (c *conn) abort(st *stream, s *status.Status) {
	maxFrame := c.maxFrame()
	b := c.w.lock()
	*b = st.appendStatus(*b, s, true, maxFrame)
	*b = appendRSTStream(*b, st.id, http2.ErrCodeNo)
	c.w.flush()
	c.finish(st)
}

// reset ends a stream the client cancelled.
func (c *conn) reset(id uint32) {
	c.mu.Lock()
	st := c.streams[id]
	if st != nil {
		delete(c.streams, id)
		st.wasReset = true
		st.wakeSender()
	}
	c.mu.Unlock()
	if st != nil {
		st.cancelCall()
	}
}

// finish removes a stream whose handler has answered. A client still
// sending is told to stop; a draining connection with nothing left in
// flight closes.
func (c *conn) finish(st *stream) (wasOpen bool) {
	c.mu.Lock()
	if c.streams[st.id] == st {
		delete(c.streams, st.id)
		wasOpen = true
	}
	last := c.draining && len(c.streams) == 0
	c.mu.Unlock()
	st.cancel()
	if last {
		c.w.closeAfterWrites(func() { c.close(nil) })
	}
	return wasOpen
}

// drain tells the client that no new streams will be served, and closes
// the connection once those in flight end.
func (c *conn) drain() {
	c.mu.Lock()
	c.draining = true
	last := c.lastStreamID
	idle := len(c.streams) == 0
	c.mu.Unlock()
	b := c.w.lock()
	*b = appendGoAway(*b, last, http2.ErrCodeNo, "")
	if idle {
		c.w.closeIdle = func() { c.close(nil) }
	}
	c.w.flush()
}

func (c *conn) goAway(code http2.ErrCode, reason string) {
	c.mu.Lock()
	last := c.lastStreamID
	c.mu.Unlock()
	b := c.w.lock()
	*b = appendGoAway(*b, last, code, reason)
	c.w.flush()
}

// close ends the connection and every stream on it.
func (c *conn) close(reason error) {
	c.closeOnce.Do(func() {
		if reason != nil && !errors.Is(reason, io.EOF) && !errors.Is(reason, net.ErrClosed) {
			c.srv.opts.Logger.Debug("client connection closed", "remote", c.nc.RemoteAddr(), "reason", reason)
		}
		if c.raw != nil {
			// The reader may be inside the socket's Read, which Close
			// would wait for: wake it, fail every write from now on,
			// and let it close the socket.
			c.done.Store(true)
			_ = c.nc.SetDeadline(longAgo)
		} else {
			c.nc.Close()
		}
		c.w.stop()
		c.mu.Lock()
		c.closed = true
		streams := c.streams
		c.streams = map[uint32]*stream{}
		for _, st := range streams {
			st.wasReset = true
			st.wakeSender()
		}
		c.mu.Unlock()
		for _, st := range streams {
			st.cancelCall()
		}
		if c.raw == nil {
			c.srv.forget(c)
		}
	})
}

// acquire waits until st may send, and takes up to want bytes of both
// windows; it also says how large a frame may be.
func (c *conn) acquire(st *stream, want int) (n, maxFrame int, err error) {
	c.mu.Lock()
	for {
		if st.wasReset || c.closed {
			c.mu.Unlock()
			return 0, 0, errStreamGone
		}
		if got := min(int64(want), c.sendWindow, st.sendWindow); got > 0 {
			c.sendWindow -= got
			st.sendWindow -= got
			maxFrame = c.peerMaxFrame
			c.mu.Unlock()
			return int(got), maxFrame, nil
		}
		st.sendBlocked = true
		if st.sendReady == nil {
			st.sendReady = make(chan struct{}, 1) // most calls never wait
		}
		ready := st.sendReady
		c.mu.Unlock()
		select {
		case <-ready:
		case <-st.ctx.Done():
			return 0, 0, st.ctx.Err()
		}
		c.mu.Lock()
	}
}

// liveFrame says whether st may still send, and how large a frame may be.
func (c *conn) liveFrame(st *stream) (maxFrame int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerMaxFrame, !st.wasReset && !c.closed
}

// consumed gives a streaming call's window back as its handler takes
// messages, in steps of half the window: what stays unreturned is then
// never more than half, and the other half holds the largest message.
func (c *conn) consumed(st *stream, n int) {
	st.rmu.Lock()
	st.recvUnacked += uint32(n)
	inc := st.recvUnacked
	if inc < c.streamWindow/2 {
		st.rmu.Unlock()
		return
	}
	st.recvUnacked = 0
	st.rmu.Unlock()
	b := c.w.lock()
	*b = appendWindowUpdate(*b, st.id, inc)
	c.w.flush()
}

func (c *conn) maxFrame() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerMaxFrame
}

var errStreamGone = errors.New("stream reset or connection closed")
