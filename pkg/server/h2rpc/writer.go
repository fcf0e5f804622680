package h2rpc

import (
	"net"
	"sync"
	"time"
)

// keepBuffer is the largest write buffer kept between writes; a larger one,
// grown by a burst, is dropped rather than held by an idle connection.
const keepBuffer = 256 << 10

// connWriter collects frames from every goroutine that answers on a
// connection and writes them in as few system calls as it can: whoever
// finds no write in progress writes everything queued so far, and keeps
// writing while others queue more behind it.
type connWriter struct {
	nc net.Conn

	mu      sync.Mutex
	buf     []byte // frames waiting to be written
	spare   []byte
	writing bool
	err     error
	// closeIdle, once set, runs after the last queued frame is written.
	closeIdle func()
	// soon writes frames the reader queued, unless an answer carries them
	// first; armed says it is set.
	soon  *time.Timer
	armed bool
}

// lock returns the buffer to append whole frames to; flush or queue ends
// the append.
func (w *connWriter) lock() *[]byte {
	w.mu.Lock()
	return &w.buf
}

// queue leaves what was appended for the next flush.
func (w *connWriter) queue() { w.mu.Unlock() }

// flush writes what was appended, unless a write in progress will.
func (w *connWriter) flush() {
	if w.writing {
		w.mu.Unlock()
		return
	}
	w.writing = true
	for len(w.buf) > 0 && w.err == nil {
		out := w.buf
		w.buf = w.spare[:0]
		w.mu.Unlock()
		_, err := w.nc.Write(out)
		w.mu.Lock()
		if cap(out) <= keepBuffer {
			w.spare = out[:0]
		} else {
			w.spare = nil
		}
		w.err = err
	}
	if w.err != nil {
		w.buf = w.buf[:0] // the connection is failing; its reader will close it
	}
	w.writing = false
	closeIdle := w.closeIdle
	w.closeIdle = nil
	w.mu.Unlock()
	if closeIdle != nil {
		closeIdle()
	}
}

// closeAfterWrites runs closeFn once everything queued is written, by
// whichever goroutine writes last.
func (w *connWriter) closeAfterWrites(closeFn func()) {
	w.mu.Lock()
	w.closeIdle = closeFn
	w.flush()
}

// controlDelay is how long the reader's own frames (PING and SETTINGS
// acknowledgements, window updates) may wait for an answer to ride with.
// grpc-go clients ping after nearly every answer they read, to size their
// windows; acknowledging each ping on its own would cost a system call per
// call. Ten milliseconds is far inside any keepalive timeout.
const controlDelay = 10 * time.Millisecond

// flushSoon makes sure frames queued by the reader go out within
// controlDelay.
func (w *connWriter) flushSoon() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 || w.writing || w.armed || w.err != nil {
		return
	}
	w.armed = true
	if w.soon == nil {
		w.soon = time.AfterFunc(controlDelay, w.flushPending)
		return
	}
	w.soon.Reset(controlDelay)
}

// stop ends the pending delayed write, if any.
func (w *connWriter) stop() {
	w.mu.Lock()
	if w.soon != nil {
		w.soon.Stop()
	}
	w.mu.Unlock()
}

// flushPending writes whatever was queued, if anything was.
func (w *connWriter) flushPending() {
	w.mu.Lock()
	w.armed = false
	if len(w.buf) == 0 {
		w.mu.Unlock()
		return
	}
	w.flush()
}
