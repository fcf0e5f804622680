package robustness

import (
	"fmt"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// goodRun is a small run whose history, event log and watch stream all
// agree. Revisions: 2 put a, 3 put b, 4 txn (put a, delete b), 5 delete a.
func goodRun() ([]porcupine.Operation, *EventLog) {
	ops := []porcupine.Operation{
		put(0, 0, 1, "a", "1", 2),
		put(1, 0, 3, "b", "1", 3),
		multiTxn(0, 4, 5, []Cmp{{"a", 2}, {"b", 3}}, []TxnOp{{Kind: OpPut, Key: "a", Value: "2"}, {Kind: OpDelete, Key: "b", Value: ""}},
			Output{Succeeded: true, Deleted: 1, Revision: 4}),
		get(1, 6, 7, "a", "2", 2, 4, 2, 4),
		rangeOp(1, 8, 9, "a", "z", 0, 1, 4, kv("a", "2", 2, 4, 2)),
		del(0, 10, 11, "a", 1, 5),
		getAbsent(1, 12, 13, "a", 5),
	}
	log := &EventLog{From: 1, To: 5, Events: []Event{
		putEv("a", "1", 2, 2, 1),
		putEv("b", "1", 3, 3, 1),
		putEv("a", "2", 2, 4, 2),
		delEv("b", 4),
		delEv("a", 5),
	}}
	return ops, log
}

func TestGoodRunPasses(t *testing.T) {
	ops, log := goodRun()
	if res, _ := Check(Model(1), prepare(ops, log), 0); res != porcupine.Ok {
		t.Fatalf("linearizability check = %s", res)
	}
	if errs := CheckEventLog(log, ops); len(errs) != 0 {
		t.Fatalf("event log check: %v", errs)
	}
	if errs := CheckWatch(WatchRecord{Events: log.Events}, log); len(errs) != 0 {
		t.Fatalf("watch check: %v", errs)
	}
	// Events after the log's end (a late write) are not held against it.
	late := append(append([]Event(nil), log.Events...), putEv("c", "late", 6, 6, 1))
	if errs := CheckWatch(WatchRecord{Events: late}, log); len(errs) != 0 {
		t.Fatalf("watch check with a late event: %v", errs)
	}
}

// TestWatchChecker feeds the watch checker streams with known faults; it
// must report each, with the word that names it.
func TestWatchChecker(t *testing.T) {
	_, log := goodRun()
	ev := log.Events
	stream := func(evs ...Event) []Event { return evs }
	tests := []struct {
		name     string
		rec      WatchRecord
		wantWord string
	}{
		{"gap between revisions", WatchRecord{Events: stream(ev[0], ev[2], ev[3], ev[4])}, "gap"},
		{"gap inside a revision", WatchRecord{Events: stream(ev[0], ev[1], ev[2], ev[4])}, "gap"},
		{"gap at the end", WatchRecord{Events: stream(ev[0], ev[1], ev[2], ev[3])}, "gap"},
		{"gap at the start (resumed too late)", WatchRecord{Events: stream(ev[1], ev[2], ev[3], ev[4])}, "gap"},
		{"no events at all", WatchRecord{}, "gap"},
		{"duplicate event", WatchRecord{Events: stream(ev[0], ev[1], ev[1], ev[2], ev[3], ev[4])}, "duplicate"},
		{"revision replayed after a resume", WatchRecord{Events: stream(ev[0], ev[1], ev[2], ev[3], ev[1], ev[2], ev[3], ev[4])}, "duplicate"},
		{"events out of order", WatchRecord{Events: stream(ev[1], ev[0], ev[2], ev[3], ev[4])}, "after one at revision"},
		{"event differs from the log", WatchRecord{Events: stream(ev[0], ev[1], putEv("a", "2", 2, 4, 3), ev[3], ev[4])}, "where the log has"},
		{"event not in the log", WatchRecord{Events: stream(ev[0], ev[1], ev[2], delEv("c", 4), ev[3], ev[4])}, "not in the log"},
		{"canceled watch", WatchRecord{Events: ev, Problems: []string{"canceled true, compact revision 3"}}, "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := CheckWatch(tc.rec, log)
			if len(errs) == 0 {
				t.Fatalf("no anomaly found")
			}
			t.Logf("reported: %v", errs)
			if !strings.Contains(fmt.Sprint(errs), tc.wantWord) {
				t.Fatalf("anomalies %v do not mention %q", errs, tc.wantWord)
			}
		})
	}
}

// TestEventLogChecker feeds the event log checker logs that are wrong in
// themselves or disagree with the history; it must report each.
func TestEventLogChecker(t *testing.T) {
	ops, log := goodRun()
	withEvents := func(evs ...Event) *EventLog { return &EventLog{From: log.From, To: log.To, Events: evs} }
	ev := log.Events
	tests := []struct {
		name     string
		ops      []porcupine.Operation
		log      *EventLog
		wantWord string
	}{
		{"a revision without an event", ops, withEvents(ev[0], ev[2], ev[3], ev[4]), "no event at revisions 3 to 3"},
		{"log ends early", ops, withEvents(ev[0], ev[1], ev[2], ev[3]), "no event at revisions 5 to 5"},
		{"wrong version", ops, withEvents(ev[0], ev[1], putEv("a", "2", 2, 4, 3), ev[3], ev[4]), "does not follow"},
		{"delete of an absent key", ops, withEvents(ev[0], ev[1], ev[2], ev[3], delEv("b", 5)), "delete of absent key"},
		{"events out of order", ops, withEvents(ev[1], ev[0], ev[2], ev[3], ev[4]), "after revision"},
		{"key twice in a revision", ops, withEvents(ev[0], ev[1], ev[2], delEv("a", 4), ev[4]), "twice"},
		{
			// The history says "1" was written at 2; the log has another value.
			"lost acknowledged write", ops,
			withEvents(putEv("a", "other", 2, 2, 1), ev[1], ev[2], ev[3], ev[4]), "the put",
		},
		{
			"read disagrees with the log",
			append(append([]porcupine.Operation(nil), ops...), get(2, 14, 15, "b", "1", 3, 3, 2, 5)),
			log, "does not hold",
		},
		{
			"range disagrees with the log",
			append(append([]porcupine.Operation(nil), ops...), rangeOp(2, 14, 15, "a", "z", 0, 1, 5, kv("b", "9", 3, 3, 1))),
			log, "does not hold",
		},
		{
			"txn's delete missing from the log", ops,
			withEvents(ev[0], ev[1], ev[2], ev[4]), "deletes at revision 4",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := CheckEventLog(tc.log, tc.ops)
			if len(errs) == 0 {
				t.Fatalf("no anomaly found")
			}
			t.Logf("reported: %v", errs)
			if !strings.Contains(fmt.Sprint(errs), tc.wantWord) {
				t.Fatalf("anomalies %v do not mention %q", errs, tc.wantWord)
			}
		})
	}
}

// TestCheckWatches checks the entry point the scenario calls: it needs a
// complete log and reports every watcher's anomalies.
func TestCheckWatches(t *testing.T) {
	ops, log := goodRun()
	good := &watcher{rec: WatchRecord{ID: 0, Events: log.Events}}
	gappy := &watcher{rec: WatchRecord{ID: 1, Events: log.Events[1:]}}
	if errs := CheckWatches(&Watchers{ws: []*watcher{good}}, log, ops); len(errs) != 0 {
		t.Fatalf("good run: %v", errs)
	}
	if errs := CheckWatches(&Watchers{ws: []*watcher{good, gappy}}, log, ops); len(errs) != 1 || !strings.Contains(errs[0].Error(), "watcher 1: gap") {
		t.Fatalf("one watcher with a gap: %v", errs)
	}
	if errs := CheckWatches(&Watchers{ws: []*watcher{good}}, nil, ops); len(errs) == 0 {
		t.Fatalf("no log, yet no anomaly")
	}
}
