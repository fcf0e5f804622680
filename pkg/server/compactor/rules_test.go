package compactor

import (
	"strings"
	"testing"
	"time"
)

func TestParseRetention(t *testing.T) {
	cases := []struct {
		mode, in string
		want     time.Duration
		err      string
	}{
		{ModePeriodic, "", 0, ""},
		{ModePeriodic, "0", 0, ""},
		{ModePeriodic, "1", time.Hour, ""},
		{ModePeriodic, "72", 72 * time.Hour, ""},
		{ModePeriodic, "5m", 5 * time.Minute, ""},
		{ModePeriodic, "1h30m", 90 * time.Minute, ""},
		{ModeRevision, "1000", 1000, ""},
		{ModeRevision, "0", 0, ""},
		// A duration is read as one whatever the mode, as etcd does.
		{ModeRevision, "1m", time.Minute, ""},
		{"", "1", 0, "--auto-compaction-mode is undefined"},
		{ModePeriodic, "-1", 0, "error parsing CompactionRetention"},
		{ModePeriodic, "abc", 0, "error parsing CompactionRetention"},
	}
	for _, c := range cases {
		got, err := ParseRetention(c.mode, c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseRetention(%q, %q) error = %v, want %q", c.mode, c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseRetention(%q, %q) = %v, %v; want %v", c.mode, c.in, got, err, c.want)
		}
	}
}

func TestCheckMode(t *testing.T) {
	for mode, want := range map[string]string{
		ModePeriodic: "", ModeRevision: "",
		"":      "undefined auto-compaction-mode",
		"daily": `unknown auto-compaction-mode "daily"`,
	} {
		err := CheckMode(mode)
		if (want == "") != (err == nil) || (err != nil && err.Error() != want) {
			t.Errorf("CheckMode(%q) = %v, want %q", mode, err, want)
		}
	}
}

func TestPeriodicSteps(t *testing.T) {
	cases := []struct {
		period       time.Duration
		wantInterval time.Duration
		wantKeep     int
	}{
		{5 * time.Second, 500 * time.Millisecond, 11},
		{30 * time.Minute, 3 * time.Minute, 11},
		{time.Hour, 6 * time.Minute, 11},
		{24 * time.Hour, 6 * time.Minute, 241}, // sampling never slower than 6 minutes
	}
	for _, c := range cases {
		p := newPeriodic(c.period, time.Unix(0, 0), 1)
		if p.interval != c.wantInterval || p.keep != c.wantKeep {
			t.Errorf("period %v: interval %v keep %d, want %v and %d", c.period, p.interval, p.keep, c.wantInterval, c.wantKeep)
		}
	}
}

// simulate runs a periodic schedule for steps intervals on a store whose
// revision grows by one per step (rev(k) = 100+k, sampled at step k), and
// returns the revisions compacted, by step.
func simulate(period time.Duration, steps int, leader func(step int) bool, fail func(step int) bool) map[int]int64 {
	start := time.Unix(1000, 0)
	p := newPeriodic(period, start, 100)
	got := map[int]int64{}
	for k := 1; k <= steps; k++ {
		now := start.Add(time.Duration(k) * p.interval)
		if leader(k) {
			if rev, ok := p.due(now); ok {
				if !fail(k) {
					p.done(rev, now)
					got[k] = rev
				}
			}
		}
		p.sample(100 + int64(k))
	}
	return got
}

func always(int) bool { return true }
func never(int) bool  { return false }

func TestPeriodicSchedule(t *testing.T) {
	// Two hours: samples every 6 minutes (step), the first compaction once
	// two hours have passed at the revision current at the start, then one
	// an hour at the oldest of the 21 samples kept.
	got := simulate(2*time.Hour, 60, always, never)
	want := map[int]int64{20: 100, 30: 100 + 30 - 21, 40: 100 + 40 - 21, 50: 100 + 50 - 21, 60: 100 + 60 - 21}
	assertCompactions(t, "2h", got, want)

	// Thirty minutes: a step of 3 minutes, compaction every 30 minutes
	// with 11 samples kept.
	got = simulate(30*time.Minute, 30, always, never)
	want = map[int]int64{10: 100, 20: 100 + 20 - 11, 30: 100 + 30 - 11}
	assertCompactions(t, "30m", got, want)
}

func TestPeriodicRetriesAtNextStep(t *testing.T) {
	// Failures at steps 10 and 11 are retried one step later each; the
	// next compaction is due a whole interval after the success.
	got := simulate(30*time.Minute, 22, always, func(k int) bool { return k == 10 || k == 11 })
	assertCompactions(t, "retry", got, map[int]int64{12: 100 + 12 - 11, 22: 100 + 22 - 11})
}

func TestPeriodicOnlyLeaderCompacts(t *testing.T) {
	// A follower samples but does not compact; once it leads, the oldest
	// sample is compacted at the next step.
	got := simulate(30*time.Minute, 15, func(k int) bool { return k >= 14 }, never)
	assertCompactions(t, "leader from step 14", got, map[int]int64{14: 100 + 14 - 11})
}

func TestPeriodicSkipsSameRevision(t *testing.T) {
	p := newPeriodic(time.Second, time.Unix(0, 0), 7)
	now := time.Unix(0, 0)
	var compactions int
	for k := 1; k <= 50; k++ {
		now = now.Add(p.interval)
		if rev, ok := p.due(now); ok {
			p.done(rev, now)
			compactions++
		}
		p.sample(7) // nothing is written
	}
	if compactions != 1 {
		t.Fatalf("an idle store was compacted %d times, want once", compactions)
	}
}

func TestRevisionRule(t *testing.T) {
	r := &revisionRule{retention: 10}
	steps := []struct {
		current int64
		want    int64 // 0: no compaction
	}{
		{5, 0}, {10, 0}, {11, 1}, {11, 0}, {25, 15}, {25, 0}, {26, 16},
	}
	for _, s := range steps {
		rev, ok := r.due(s.current)
		if (s.want != 0) != ok || rev != s.want {
			t.Fatalf("current %d: due = %d, %v; want %d", s.current, rev, ok, s.want)
		}
		if ok {
			r.done(rev)
		}
	}
}

func assertCompactions(t *testing.T, name string, got, want map[int]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: compactions %v, want %v", name, got, want)
		return
	}
	for k, rev := range want {
		if got[k] != rev {
			t.Errorf("%s: compactions %v, want %v", name, got, want)
			return
		}
	}
}
