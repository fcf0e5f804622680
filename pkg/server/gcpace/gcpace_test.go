package gcpace

import (
	"testing"
	"time"
)

func TestPercentKeepsTheGoalAtTheFloor(t *testing.T) {
	const mib = 1 << 20
	cfg := Config{Floor: 128 * mib}.withDefaults()
	tests := []struct {
		name  string
		live  uint64
		want  int
		apply bool
	}{
		{"small heap: goal at the floor", 32 * mib, 300, true},
		{"a little more live: not worth a change", 33 * mib, 300, false},
		{"live grows: GOGC follows", 48 * mib, 166, true},
		{"half the floor: the runtime's own pacing", 64 * mib, 100, true},
		{"beyond the floor: unchanged default", 900 * mib, 100, false},
		{"tiny heap: capped", 1 * mib, 1000, true},
		{"no collection yet: capped", 0, 1000, false},
	}
	p := newPacer(cfg)
	for _, tt := range tests {
		got, apply := p.percent(tt.live)
		if got != tt.want || apply != tt.apply {
			t.Errorf("%s: percent(%d MiB) = %d, %v; want %d, %v", tt.name, tt.live/mib, got, apply, tt.want, tt.apply)
		}
	}
}

func TestPercentHonoursTheBasePercent(t *testing.T) {
	p := newPacer(Config{Floor: 100, Percent: 400}.withDefaults())
	if got, _ := p.percent(50); got != 400 {
		t.Fatalf("a floor needing less than the base GOGC gave %d, want the base 400", got)
	}
}

func TestIdleReleasesOncePerQuietSpell(t *testing.T) {
	cfg := Config{Floor: 1, Interval: 100 * time.Millisecond, IdleAfter: 300 * time.Millisecond, IdleBytes: 1000}.withDefaults()
	p := newPacer(cfg)
	// Cumulative allocation counts, one per interval, and whether memory
	// should be handed back after each.
	steps := []struct {
		allocs uint64
		want   bool
	}{
		{5000, false},  // first look: nothing to compare with
		{50000, false}, // busy
		{50100, false}, // quiet 1
		{50200, false}, // quiet 2
		{50300, true},  // quiet 3 = IdleAfter: release
		{50400, false}, // still quiet: released already
		{90000, false}, // busy again
		{90001, false},
		{90002, false},
		{90003, true}, // a new quiet spell releases again
	}
	for i, st := range steps {
		if got := p.idle(st.allocs); got != st.want {
			t.Fatalf("step %d (allocs %d): idle = %v, want %v", i, st.allocs, got, st.want)
		}
	}
}
