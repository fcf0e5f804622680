package h2rpc

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"golang.org/x/net/http2"
)

// A client with one call in flight per connection sends a request and
// waits for its answer: reading the request, the reader drains the socket,
// and the read after it finds nothing (EAGAIN) before the reader parks
// until more arrives. That empty read is a third of the system calls of
// such a call. A read that returns less than it asked for has drained the
// socket just as surely, and the poller reports any byte that arrives
// after it, so on a TCP connection the reader waits straight after such a
// read instead. Go's poller forgets a readiness it saw before each
// net.Conn Read, so the reader stays inside one RawConn.Read for the
// connection's life, parsing frames from its own buffer.

// sniffedConn is a connection that a listener read the first bytes of, to
// route it, and that serves them again before its socket's.
type sniffedConn interface {
	// NetConn is the connection under the wrapper.
	NetConn() net.Conn
	// TakeReadAhead returns the bytes read ahead that Read has not
	// returned yet; the caller reads NetConn from then on.
	TakeReadAhead() []byte
}

// rawConn is the connection's raw socket, when it has one the reader can
// wait on: a plain TCP connection, sniffed or not, but not TLS.
func rawConn(nc net.Conn) syscall.RawConn {
	if s, ok := nc.(sniffedConn); ok {
		nc = s.NetConn()
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// longAgo is a deadline that has passed: setting it wakes the reader and
// fails every later read and write.
var longAgo = time.Unix(1, 0)

// readFramesRaw is the frame loop of readLoop on a raw connection. Frames
// bufio read ahead with the preface come first.
func (c *conn) readFramesRaw() error {
	// What the frame reader holds came before what a sniffing listener
	// still holds.
	buf := make([]byte, 0, readBufferSize)
	if n := c.fr.r.Buffered(); n > 0 {
		ahead, _ := c.fr.r.Peek(n)
		buf = append(buf, ahead...)
	}
	if s, ok := c.nc.(sniffedConn); ok {
		buf = append(buf, s.TakeReadAhead()...)
	}
	var ferr error
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			var err error
			if buf, err = c.handleBuffered(buf); err != nil {
				ferr = err
				return true
			}
			if c.done.Load() {
				ferr = net.ErrClosed
				return true
			}
			if len(buf) == cap(buf) {
				buf = grow(buf, frameHeaderLen+int(c.fr.max))
			}
			space := cap(buf) - len(buf)
			n, err := syscall.Read(int(fd), buf[len(buf):cap(buf)])
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.EAGAIN):
				c.w.flushSoon()
				return false
			case err != nil:
				ferr = err
				return true
			case n == 0:
				ferr = io.EOF
				return true
			}
			buf = buf[:len(buf)+n]
			if n < space {
				// Drained: handle what came, then wait for more.
				if buf, err = c.handleBuffered(buf); err != nil {
					ferr = err
					return true
				}
				c.w.flushSoon()
				return false
			}
		}
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// handleBuffered acts on the whole frames at the start of buf and returns
// the rest, moved to the buffer's start.
func (c *conn) handleBuffered(buf []byte) ([]byte, error) {
	off := 0
	for len(buf)-off >= frameHeaderLen {
		h := parseFrameHeader(buf[off:])
		if h.length > c.fr.max {
			c.goAway(http2.ErrCodeFrameSize, errFrameTooLarge.Error())
			return nil, errFrameTooLarge
		}
		end := off + frameHeaderLen + int(h.length)
		if end > len(buf) {
			break
		}
		if err := c.handle(h, buf[off+frameHeaderLen:end]); err != nil {
			c.goAway(http2.ErrCodeProtocol, err.Error())
			return nil, err
		}
		off = end
	}
	n := copy(buf, buf[off:])
	return buf[:n], nil
}

// grow returns buf, full of the start of a frame, with room for a frame
// of up to need bytes.
func grow(buf []byte, need int) []byte {
	nb := make([]byte, len(buf), max(need, 2*cap(buf)))
	copy(nb, buf)
	return nb
}
