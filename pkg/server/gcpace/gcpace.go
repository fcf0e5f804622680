// Package gcpace paces Go's garbage collector for a server whose live heap
// is small while it allocates fast.
//
// With the runtime's default pacing (GOGC=100) the heap may grow to twice
// what survived the last collection before the next one starts. A member
// serving requests keeps a few tens of MiB live but allocates about 7 KiB
// per request, mostly gRPC's, so under load it collected many times a
// second and spent a fifth of its CPU marking and sweeping. The pacer
// keeps a floor under the heap goal instead: while the live heap is small
// the goal stays at Floor, and once the live heap is bigger than half of
// Floor the runtime's own pacing applies unchanged, so large reads do not
// let the heap grow beyond twice what they hold.
//
// A heap goal held up by the floor also keeps garbage pages resident while
// the member is busy; package memtrim hands them back once it goes quiet.
package gcpace

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Config says how to pace the collector.
type Config struct {
	// Floor is the smallest heap goal in bytes; 0 leaves the collector
	// alone.
	Floor uint64
	// Percent is the GOGC value applied once the live heap needs no floor;
	// 0 means 100, the runtime's default.
	Percent int
	// MaxPercent bounds how far the floor may raise GOGC; 0 means 1000.
	MaxPercent int
	// Interval is how often the heap is looked at; 0 means 100 ms.
	Interval time.Duration
}

func (c Config) withDefaults() Config {
	if c.Percent <= 0 {
		c.Percent = 100
	}
	if c.MaxPercent <= 0 {
		c.MaxPercent = 1000
	}
	if c.Interval <= 0 {
		c.Interval = 100 * time.Millisecond
	}
	return c
}

// Run paces the collector until ctx is done, then puts the runtime's
// pacing back as it found it.
func Run(ctx context.Context, cfg Config) {
	if cfg.Floor == 0 {
		return
	}
	cfg = cfg.withDefaults()
	p := newPacer(cfg)
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	defer debug.SetGCPercent(cfg.Percent)
	for {
		metrics.Read(samples)
		if pct, ok := p.percent(sampleUint(samples[0])); ok {
			debug.SetGCPercent(pct)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sampleUint(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}

// pacer decides, from the live heap, what GOGC should be.
type pacer struct {
	cfg Config
	set int // the GOGC last applied, 0 before the first
}

func newPacer(cfg Config) *pacer { return &pacer{cfg: cfg} }

// percent gives the GOGC that puts the heap goal at the floor for a live
// heap of live bytes, and whether it differs enough from the last one
// applied to be worth applying: changing GOGC stops the world briefly.
func (p *pacer) percent(live uint64) (int, bool) {
	want := p.cfg.Percent
	if live > 0 && live < p.cfg.Floor {
		if floorPct := int(p.cfg.Floor*100/live) - 100; floorPct > want {
			want = min(floorPct, p.cfg.MaxPercent)
		}
	} else if live == 0 {
		want = p.cfg.MaxPercent
	}
	if p.set != 0 && within(want, p.set, 10) {
		return p.set, false
	}
	p.set = want
	return want, true
}

// within says whether a and b differ by at most pct percent of b.
func within(a, b, pct int) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d*100 <= b*pct
}
