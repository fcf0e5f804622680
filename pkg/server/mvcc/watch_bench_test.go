package mvcc

import (
	"fmt"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// BenchmarkNotifyRangeWatchers is the cost one write pays to find the
// range watchers its key concerns, with n watchers on prefixes the key is
// not in (as most watchers of a big cluster are, for any one write) and
// one that it is in. That one takes no puts, so that what is measured is
// finding it, not a stream that may fall behind its reader.
func BenchmarkNotifyRangeWatchers(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) {
			s := openStore(b, filepath.Join(b.TempDir(), "db"))
			w := NewWatchable(s.Store, nil)
			defer w.Stop()
			ws := w.NewStream()
			defer ws.Close()
			// Responses (each watch's created one, then the events)
			// are read as they come, so the stream never fills.
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-ws.Chan():
					case <-stop:
						return
					}
				}
			}()
			for i := range n {
				p := fmt.Sprintf("w/%06d/", i)
				if _, err := ws.Watch(WatchOptions{Key: []byte(p), End: prefixEnd([]byte(p))}); err != nil {
					b.Fatal(err)
				}
			}
			// The one watcher the writes concern.
			if _, err := ws.Watch(WatchOptions{Key: []byte("k/"), End: []byte("k0"), NoPut: true}); err != nil {
				b.Fatal(err)
			}
			kv := &mvccpb.KeyValue{Key: []byte("k/1"), Value: []byte("v"), CreateRevision: 2, Version: 1}
			rev := s.Rev()
			b.ReportAllocs()
			for b.Loop() {
				rev++
				kv.ModRevision = rev
				w.notify(rev, []*mvccpb.KeyValue{kv})
			}
		})
	}
}

// prefixEnd is the end of the range of keys starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}
