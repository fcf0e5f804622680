package gcpace

import "testing"

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
