package api

import (
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"google.golang.org/grpc/mem"
)

// An answer encoded ahead of time reaches gRPC as the unknown fields of an
// empty message (see preEncoded), and so without the pool its buffer should
// go back to once written. lent keeps that pool, found by a weak pointer to
// the buffer's first byte, so that an answer gRPC never marshals is not
// kept alive by the table.
var lent sync.Map // weak.Pointer[byte] -> lentTo

// lentHeld counts the entries of lent.
var lentHeld atomic.Int64

type lentTo struct {
	pool    mem.BufferPool
	dropped func()
}

// lend makes passThroughCodec hand buf to gRPC with pool as its pool, which
// gRPC gives it back to once written. If buf becomes garbage without being
// marshalled, the collector calls dropped (when not nil) instead.
func lend(buf []byte, pool mem.BufferPool, dropped func()) {
	if len(buf) == 0 {
		return
	}
	w := weak.Make(&buf[0])
	lentHeld.Add(1)
	lent.Store(w, lentTo{pool, dropped})
	runtime.AddCleanup(&buf[0], func(e lentEntry) {
		if _, ok := lent.LoadAndDelete(e.w); ok {
			lentHeld.Add(-1)
		}
		if e.dropped != nil {
			e.dropped()
		}
	}, lentEntry{w, dropped})
}

type lentEntry struct {
	w       weak.Pointer[byte]
	dropped func()
}

// answerBuffer is raw as gRPC's buffer, given back to its pool, if it was
// lent one, once gRPC is done with it. While nothing is lent, as under
// small reads, it skips the lookup: making its weak pointer cost 3% of a
// member's CPU under single-key ranges.
func answerBuffer(raw []byte) mem.Buffer {
	if lentHeld.Load() == 0 {
		return mem.SliceBuffer(raw)
	}
	if v, ok := lent.LoadAndDelete(weak.Make(&raw[0])); ok {
		lentHeld.Add(-1)
		return mem.NewBuffer(&raw, v.(lentTo).pool)
	}
	return mem.SliceBuffer(raw)
}

// chunkSpares keeps the buffers of a stream's chunks once gRPC has written
// them, for the stream's next chunks: a stream of many chunks then reuses
// two or three buffers instead of leaving each to the collector, whose
// heap would otherwise grow by the chunks in flight between collections.
type chunkSpares struct{ c chan []byte }

func newChunkSpares() *chunkSpares { return &chunkSpares{c: make(chan []byte, 2)} }

// Get is never called: the spares only take buffers back.
func (s *chunkSpares) Get(n int) *[]byte { b := make([]byte, n); return &b }

// Put is gRPC done with a chunk.
func (s *chunkSpares) Put(p *[]byte) {
	select {
	case s.c <- (*p)[:0]:
	default:
	}
}

// take returns an empty buffer of at least n bytes, a spare if one is big
// enough. New buffers get a quarter more, as the chunks of a stream vary
// in size around the same target.
func (s *chunkSpares) take(n int) []byte {
	select {
	case b := <-s.c:
		if cap(b) >= n {
			return b
		}
	default:
	}
	return make([]byte, 0, n+n/4)
}
