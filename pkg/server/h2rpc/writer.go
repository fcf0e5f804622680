package h2rpc

import (
	"net"
	"sync"
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

// flushPending writes whatever was queued, if anything was.
func (w *connWriter) flushPending() {
	w.mu.Lock()
	if len(w.buf) == 0 {
		w.mu.Unlock()
		return
	}
	w.flush()
}
