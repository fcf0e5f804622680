package server

import (
	"testing"
	"time"
)

// Reachable voters take turns in ID order, the lowest first, and the
// turns go round again.
func TestCampaignTurn(t *testing.T) {
	const turn = 500 * time.Millisecond
	tests := []struct {
		elapsed  time.Duration
		rank, up int
		want     bool
	}{
		{0, 0, 3, true},
		{0, 1, 3, false},
		{0, 2, 3, false},
		{turn - 1, 0, 3, true},
		{turn, 0, 3, false},
		{turn, 1, 3, true},
		{2 * turn, 2, 3, true},
		{2 * turn, 1, 3, false},
		{3 * turn, 0, 3, true}, // round again
		{4 * turn, 1, 3, true},
		{turn, 1, 2, true}, // two reachable of three: the second in line
		{2 * turn, 0, 2, true},
		{time.Hour, 0, 0, true}, // degenerate: only the lowest
		{time.Hour, 1, 0, false},
	}
	for _, tt := range tests {
		if got := campaignTurn(tt.elapsed, tt.rank, tt.up, turn); got != tt.want {
			t.Errorf("campaignTurn(%v, rank %d, %d up) = %v, want %v", tt.elapsed, tt.rank, tt.up, got, tt.want)
		}
	}
}
