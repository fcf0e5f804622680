package memtrim

import (
	"context"
	"runtime/metrics"
	"testing"
	"time"
)

var sink []byte

func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestTrimsOnceQuiet checks that garbage left by a burst of allocation is
// collected once the process goes quiet, and only once.
func TestTrimsOnceQuiet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Run(ctx, Config{Interval: 20 * time.Millisecond}) }()
	defer func() { cancel(); <-done }()

	time.Sleep(100 * time.Millisecond) // let a trim of what start-up allocated pass
	before := forcedGCs()
	for range 8 {
		sink = make([]byte, 16<<20)
		sink[len(sink)-1] = 1
	}
	sink = nil
	deadline := time.Now().Add(10 * time.Second)
	for forcedGCs() == before {
		if time.Now().After(deadline) {
			t.Fatal("no collection after the burst")
		}
		time.Sleep(10 * time.Millisecond)
	}
	after := forcedGCs()
	time.Sleep(300 * time.Millisecond) // 15 quiet intervals with no new garbage
	if n := forcedGCs(); n != after {
		t.Fatalf("%d more collections while idle with no new garbage", n-after)
	}
}
