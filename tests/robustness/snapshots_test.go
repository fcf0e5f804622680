package robustness

import (
	"strings"
	"testing"
)

// TestCheckSnapshots shows the snapshot check flags a snapshot that is not
// the store's state at its revision: a value from another revision, a key
// deleted by then still present, a key missing, a revision outside the log.
func TestCheckSnapshots(t *testing.T) {
	log := &EventLog{From: 1, To: 5, Events: []Event{
		{Type: EventPut, Key: "key1", Value: "a", ModRev: 2},
		{Type: EventPut, Key: "key2", Value: "b", ModRev: 3},
		{Type: EventPut, Key: "key1", Value: "c", ModRev: 4},
		{Type: EventDelete, Key: "key2", ModRev: 5},
	}}
	tests := []struct {
		name   string
		st     SnapshotState
		wantOK bool
		want   string
	}{
		{"state at 3", SnapshotState{Rev: 3, Values: map[string]string{"key1": "a", "key2": "b"}}, true, ""},
		{"state at 5", SnapshotState{Rev: 5, Values: map[string]string{"key1": "c"}}, true, ""},
		{"empty at the start", SnapshotState{Rev: 1, Values: map[string]string{}}, true, ""},
		{"value of a later revision", SnapshotState{Rev: 3, Values: map[string]string{"key1": "c", "key2": "b"}}, false, "key key1"},
		{"deleted key present", SnapshotState{Rev: 5, Values: map[string]string{"key1": "c", "key2": "b"}}, false, "does not exist"},
		{"key missing", SnapshotState{Rev: 4, Values: map[string]string{"key1": "c"}}, false, "key key2"},
		{"beyond the log", SnapshotState{Rev: 6, Values: map[string]string{"key1": "c"}}, false, "outside the event log"},
	}
	for _, tt := range tests {
		errs := CheckSnapshots([]SnapshotState{tt.st}, log)
		switch {
		case tt.wantOK && len(errs) > 0:
			t.Errorf("%s: flagged: %v", tt.name, errs)
		case !tt.wantOK && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want)):
			t.Errorf("%s: got %v, want one error mentioning %q", tt.name, errs, tt.want)
		}
	}
}
