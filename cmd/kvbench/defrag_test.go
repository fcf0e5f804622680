package main

import (
	"testing"
	"time"
)

func TestPauses(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name      string
		acks      []ack
		from, to  int
		gap, p100 time.Duration
		dueInside int
	}{
		{
			name: "steady writes through a short defrag",
			acks: []ack{{at(0), at(2)}, {at(10), at(12)}, {at(20), at(22)}, {at(30), at(32)}},
			from: 5, to: 25,
			gap: 10 * time.Millisecond, p100: 2 * time.Millisecond, dueInside: 2,
		},
		{
			name: "writes stuck for the whole defrag",
			acks: []ack{{at(0), at(2)}, {at(10), at(95)}, {at(20), at(96)}, {at(100), at(101)}},
			from: 5, to: 90,
			gap: 93 * time.Millisecond, p100: 85 * time.Millisecond, dueInside: 2,
		},
		{
			name: "no write before the window counts from its start",
			acks: []ack{{at(10), at(40)}},
			from: 5, to: 50,
			gap: 35 * time.Millisecond, p100: 30 * time.Millisecond, dueInside: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gap, p100, lat := pauses(tt.acks, at(tt.from), at(tt.to))
			if gap != tt.gap || p100 != tt.p100 || len(lat) != tt.dueInside {
				t.Fatalf("gap %v, p100 %v, %d due inside; want %v, %v, %d", gap, p100, len(lat), tt.gap, tt.p100, tt.dueInside)
			}
		})
	}
}
