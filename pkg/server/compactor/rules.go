package compactor

import "time"

// retryDivisor splits the (at most hourly) compaction interval into the
// steps at which periodic mode samples the revision and retries a failed
// compaction, as etcd's.
const retryDivisor = 10

// periodic holds periodic mode's schedule, apart from any clock so that
// its rules can be tested step by step. Every interval it records the
// current revision; once a whole retention period has passed since it
// started (or since its last compaction, capped at an hour) it compacts at
// the oldest revision it holds, which was current about one retention
// period ago.
type periodic struct {
	period   time.Duration // the retention
	interval time.Duration // sampling and retry step
	compact  time.Duration // time between compactions after the first

	revs        []int64 // oldest first, at most keep of them
	keep        int
	lastRev     int64
	lastSuccess time.Time
	wait        time.Duration // the whole period at first, then compact
}

func newPeriodic(period time.Duration, now time.Time, rev int64) *periodic {
	step := min(period, time.Hour)
	p := &periodic{
		period:      period,
		interval:    step / retryDivisor,
		compact:     step,
		lastSuccess: now,
		wait:        period,
	}
	p.keep = int(period/p.interval) + 1
	p.sample(rev)
	return p
}

// sample records the revision current at the end of a step.
func (p *periodic) sample(rev int64) {
	p.revs = append(p.revs, rev)
	if len(p.revs) > p.keep {
		p.revs = p.revs[1:]
	}
}

// due says, at a step's end, whether to compact and at which revision:
// not before the wait since the last success is over, and not twice at
// the same revision.
func (p *periodic) due(now time.Time) (int64, bool) {
	rev := p.revs[0]
	if now.Sub(p.lastSuccess) < p.wait || rev == p.lastRev {
		return 0, false
	}
	p.wait = p.compact
	return rev, true
}

// done records a compaction that succeeded.
func (p *periodic) done(rev int64, now time.Time) {
	p.lastRev, p.lastSuccess = rev, now
}

// revisionRule keeps the last retention revisions: at each check it
// compacts at current-retention unless that is not positive or was the
// last compaction.
type revisionRule struct {
	retention int64
	prev      int64
}

func (r *revisionRule) due(current int64) (int64, bool) {
	rev := current - r.retention
	if rev <= 0 || rev == r.prev {
		return 0, false
	}
	return rev, true
}

func (r *revisionRule) done(rev int64) { r.prev = rev }
