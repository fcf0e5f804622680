package main

import (
	"testing"
	"time"
)

func TestEventLatency(t *testing.T) {
	for _, tc := range []struct {
		name          string
		sent, arrived time.Duration
		valSize       int
		want          time.Duration
	}{
		{"same instant", 5 * time.Millisecond, 5 * time.Millisecond, 8, 0},
		{"two ms later", time.Second, time.Second + 2*time.Millisecond, 8, 2 * time.Millisecond},
		{"padding after the stamp is ignored", 3 * time.Microsecond, 10 * time.Microsecond, 256, 7 * time.Microsecond},
		{"sent at the start", 0, 40 * time.Millisecond, 32, 40 * time.Millisecond},
		{"long run", 90 * time.Minute, 90*time.Minute + 1500*time.Microsecond, 8, 1500 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			val := make([]byte, tc.valSize)
			for i := range val {
				val[i] = 0xff // the stamp must overwrite, not merge with, old bytes
			}
			stampValue(val, tc.sent)
			got, ok := eventLatency(val, tc.arrived)
			if !ok || got != tc.want {
				t.Fatalf("eventLatency = %v, %v; want %v, true", got, ok, tc.want)
			}
		})
	}
	if _, ok := eventLatency([]byte("short"), time.Second); ok {
		t.Fatal("a value shorter than a stamp was accepted")
	}
}

func TestExpectedDeliveries(t *testing.T) {
	for _, tc := range []struct {
		puts, watchers, keys int
		want                 int64
	}{
		{puts: 1, watchers: 1, keys: 1, want: 1},
		{puts: 300, watchers: 1000, keys: 10, want: 300 * 100},
		{puts: 300, watchers: 10000, keys: 10, want: 300 * 1000},
		{puts: 7, watchers: 5, keys: 1, want: 35},
		// Keys 0..2 get 2 watchers each and key 3 one; puts 0..3 hit keys
		// 0..3 and put 4 hits key 0 again: 2+2+2+1+2.
		{puts: 5, watchers: 7, keys: 4, want: 9},
		// More keys than watchers: puts to unwatched keys deliver nothing.
		{puts: 10, watchers: 3, keys: 5, want: 6},
		// More keys than puts: only the first keys are written.
		{puts: 2, watchers: 10, keys: 5, want: 4},
		{puts: 0, watchers: 10, keys: 5, want: 0},
		{puts: 10, watchers: 10, keys: 0, want: 0},
	} {
		if got := expectedDeliveries(tc.puts, tc.watchers, tc.keys); got != tc.want {
			t.Errorf("expectedDeliveries(%d puts, %d watchers, %d keys) = %d, want %d", tc.puts, tc.watchers, tc.keys, got, tc.want)
		}
	}
}

func TestEventRate(t *testing.T) {
	for _, tc := range []struct {
		deliveries        int
		firstSend, lastAt time.Duration
		want              float64
	}{
		{deliveries: 1000, firstSend: 0, lastAt: time.Second, want: 1000},
		{deliveries: 30000, firstSend: 500 * time.Millisecond, lastAt: 3500 * time.Millisecond, want: 10000},
		{deliveries: 0, firstSend: 0, lastAt: time.Second, want: 0},
		{deliveries: 5, firstSend: time.Second, lastAt: time.Second, want: 0}, // empty window
	} {
		if got := eventRate(tc.deliveries, tc.firstSend, tc.lastAt); got != tc.want {
			t.Errorf("eventRate(%d, %v, %v) = %v, want %v", tc.deliveries, tc.firstSend, tc.lastAt, got, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1) // 1ms .. 100ms
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"no samples", nil, 0.5, 0},
		{"one sample p50", []time.Duration{ms(3)}, 0.5, ms(3)},
		{"one sample p99", []time.Duration{ms(3)}, 0.99, ms(3)},
		{"p50 of 100", hundred, 0.5, ms(51)},
		{"p99 of 100", hundred, 0.99, ms(100)},
		{"max of 100", hundred, 1, ms(100)},
		{"min of 100", hundred, 0, ms(1)},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(p=%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}
