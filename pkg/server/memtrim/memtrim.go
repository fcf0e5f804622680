// Package memtrim gives the heap's garbage back to the operating system
// once a process goes quiet.
//
// The Go runtime lets the heap grow to about twice what the last
// collection found live before it collects again, and returns freed pages
// to the OS only slowly. A member that has just loaded data, replayed its
// log at start or answered a burst of large reads therefore keeps holding,
// while idle, up to twice its live data or more, for minutes. Under load
// that headroom is what makes collections rare; once requests stop it is
// only memory the host cannot use. Run collects and releases it then, and
// does nothing while the process keeps allocating.
package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"syscall"
	"time"
)

// Config tunes Run; the zero value takes the defaults.
type Config struct {
	// Interval is how often the heap is looked at (default 500ms).
	Interval time.Duration
	// Quiet is how many bytes the process may allocate during one
	// Interval and still count as quiet (default 1 MiB).
	Quiet uint64
	// QuietCPU is how much CPU time the process may use during one
	// Interval and still count as quiet (default a twentieth of it). A
	// member writing out large answers allocates nothing for seconds
	// while it is far from done with them.
	QuietCPU time.Duration
	// Slack is how much a process must have allocated since the last
	// trim for a quiet spell to trigger the next one (default 8 MiB, or
	// an eighth of the live data if more): a collection costs CPU, and
	// with little new garbage it would give little back.
	Slack uint64
}

const (
	metricAllocs   = "/gc/heap/allocs:bytes"
	metricLive     = "/gc/heap/live:bytes"
	defaultQuiet   = 1 << 20
	defaultSlack   = 8 << 20
	defaultEvery   = 500 * time.Millisecond
	liveSlackRatio = 8
)

// Run watches allocation until ctx ends. Each time the process has been
// quiet for an Interval after allocating more than Slack (or an eighth of
// its live data, if more) since the last trim, it collects and returns the
// freed memory to the OS. The amount allocated is all it goes by: what the
// last collection found live may have been the very answers that are
// garbage now.
func Run(ctx context.Context, cfg Config) {
	if cfg.Interval <= 0 {
		cfg.Interval = defaultEvery
	}
	if cfg.Quiet == 0 {
		cfg.Quiet = defaultQuiet
	}
	if cfg.Slack == 0 {
		cfg.Slack = defaultSlack
	}
	if cfg.QuietCPU <= 0 {
		cfg.QuietCPU = cfg.Interval / 20
	}
	samples := []metrics.Sample{{Name: metricAllocs}, {Name: metricLive}}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	metrics.Read(samples)
	last, trimmedAt, lastCPU := value(samples[0]), value(samples[0]), cpuTime()
	if trimmedAt > cfg.Slack {
		trimmedAt -= cfg.Slack + 1 // what start-up allocated counts
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		allocs, live, cpu := value(samples[0]), value(samples[1]), cpuTime()
		quiet := allocs-last < cfg.Quiet && cpu-lastCPU < cfg.QuietCPU
		last, lastCPU = allocs, cpu
		if quiet && allocs-trimmedAt > max(cfg.Slack, live/liveSlackRatio) {
			debug.FreeOSMemory()
			metrics.Read(samples[:1])
			last, trimmedAt, lastCPU = value(samples[0]), value(samples[0]), cpuTime()
		}
	}
}

func value(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
