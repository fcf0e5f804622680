package robustness

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// maxErrors bounds the anomalies reported per check: after the first few
// the rest are usually consequences.
const maxErrors = 10

// CheckWatches checks the event log on its own and against the history
// ops (every successful operation is looked at; failed ones are
// ignored), and then every watcher's stream against the log. It returns
// every anomaly found, up to a bound per check.
func CheckWatches(ws *Watchers, log *EventLog, ops []porcupine.Operation) []error {
	if log == nil {
		return []error{fmt.Errorf("no complete event log to check the watches against")}
	}
	errs := CheckEventLog(log, ops)
	for _, rec := range ws.Records() {
		errs = append(errs, CheckWatch(rec, log)...)
	}
	return errs
}

// CheckEventLog checks that the log is one possible history of the store
// and that it agrees with the recorded requests:
//
//   - its events are in revision order, within (From, To], and every
//     revision in that range has at least one event: each revision is
//     made by a write, and only workload keys are written, so a revision
//     without an event is a lost one;
//   - one revision names a key at most once, and each key's events form
//     a valid chain: a put of an absent key has version 1 and create
//     revision = mod revision, a put of a live key raises the version by
//     one and keeps the create revision, a delete removes a live key
//     (the workload keys are absent at From);
//   - each successful put or txn's value is in the log at the revision
//     its response reported, and each successful delete of a key is a
//     delete event there; a multi-op txn's deletes are all there;
//   - each key a successful read returned, if written in the range, is
//     the log's put event of that key at its mod revision.
func CheckEventLog(log *EventLog, ops []porcupine.Operation) []error {
	var errs []error
	// report adds an anomaly and says whether there is room for more.
	report := func(format string, args ...interface{}) bool {
		if len(errs) < maxErrors {
			errs = append(errs, fmt.Errorf("event log: "+format, args...))
		}
		return len(errs) < maxErrors
	}

	byRev := map[int64][]Event{}
	live := map[string]Event{}
	prevRev := log.From
	for _, ev := range log.Events {
		switch {
		case ev.ModRev < prevRev:
			report("event %s after revision %d", describeEvent(ev), prevRev)
		case ev.ModRev > log.To:
			report("event %s beyond the log's end %d", describeEvent(ev), log.To)
		case ev.ModRev > prevRev+1:
			report("no event at revisions %d to %d", prevRev+1, ev.ModRev-1)
		}
		prevRev = max(prevRev, ev.ModRev)
		for _, o := range byRev[ev.ModRev] {
			if o.Key == ev.Key {
				report("key %s twice at revision %d", ev.Key, ev.ModRev)
			}
		}
		byRev[ev.ModRev] = append(byRev[ev.ModRev], ev)

		prev, isLive := live[ev.Key]
		switch {
		case ev.Type == EventDelete && !isLive:
			report("delete of absent key: %s", describeEvent(ev))
		case ev.Type == EventDelete:
			delete(live, ev.Key)
		case !isLive && (ev.Version != 1 || ev.CreateRev != ev.ModRev):
			report("creation with version %d, create revision %d: %s", ev.Version, ev.CreateRev, describeEvent(ev))
		case isLive && (ev.Version != prev.Version+1 || ev.CreateRev != prev.CreateRev):
			report("update of %s does not follow %s", describeEvent(ev), describeEvent(prev))
		}
		if ev.Type == EventPut {
			live[ev.Key] = ev
		}
	}
	if prevRev < log.To {
		report("no event at revisions %d to %d", prevRev+1, log.To)
	}

	inRange := func(rev int64) bool { return rev > log.From && rev <= log.To }
	hasPut := func(rev int64, key, value string) bool {
		for _, ev := range byRev[rev] {
			if ev.Type == EventPut && ev.Key == key && ev.Value == value {
				return true
			}
		}
		return false
	}
	deletes := func(rev int64, key string) (n int64, ofKey bool) {
		for _, ev := range byRev[rev] {
			if ev.Type == EventDelete {
				n++
				ofKey = ofKey || ev.Key == key
			}
		}
		return n, ofKey
	}
	// checkKV reports kv unless the log holds it; like report, it returns
	// false once the report is full.
	checkKV := func(op porcupine.Operation, kv KV) bool {
		if !inRange(kv.ModRev) {
			return true
		}
		want := Event{Type: EventPut, Key: kv.Key, Value: kv.Value, CreateRev: kv.CreateRev, ModRev: kv.ModRev, Version: kv.Version, Lease: kv.Lease}
		for _, ev := range byRev[kv.ModRev] {
			if ev == want {
				return true
			}
		}
		return report("%s returned %s, which the log does not hold at revision %d",
			describe(op.Input.(Input), op.Output.(Output)), describeKV(kv), kv.ModRev)
	}

	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		if out.Err != "" || out.CompactErr != "" || out.LeaseErr != "" {
			continue
		}
		missing := func(what string) bool {
			return report("%s: %s not in the log at revision %d", describe(in, out), what, out.Revision)
		}
		more := true // false once the report is full
		switch {
		case in.Kind == OpPut || (in.Kind == OpTxn && out.Succeeded):
			if inRange(out.Revision) && !hasPut(out.Revision, in.Key, in.Value) {
				more = missing("the put")
			}
		case in.Kind == OpDelete && out.Deleted > 0:
			if _, ofKey := deletes(out.Revision, in.Key); inRange(out.Revision) && !ofKey {
				more = missing("the delete")
			}
		case in.Kind == OpMultiTxn && out.Succeeded:
			if !inRange(out.Revision) || !changedStore(in, out) {
				break
			}
			for _, w := range in.Then {
				if w.Kind == OpPut && !hasPut(out.Revision, w.Key, w.Value) {
					more = missing("put of " + w.Key)
				}
			}
			if n, _ := deletes(out.Revision, ""); n != out.Deleted {
				more = report("%s: the log has %d deletes at revision %d", describe(in, out), n, out.Revision)
			}
		case in.Kind == OpGet || in.Kind == OpTxn:
			if out.Found {
				more = checkKV(op, KV{Key: in.Key, Value: out.Value, CreateRev: out.CreateRev, ModRev: out.ModRev, Version: out.Version, Lease: out.Lease})
			}
		case in.Kind == OpRange || in.Kind == OpMultiTxn:
			for _, kv := range out.KVs {
				if more = checkKV(op, kv); !more {
					break
				}
			}
		}
		if !more {
			break
		}
	}
	return errs
}

// CheckWatch checks one watcher's stream against the log: it must have
// had no problem (cancellation, error, header below its events), and its
// events up to the log's end must be exactly the log's: in revision
// order, the events of one revision in the log's order, none missing
// (a gap), none twice (a duplicate), none different and none extra.
// Events after the log's end are not checked; a write whose client gave
// up may land after it.
func CheckWatch(rec WatchRecord, log *EventLog) []error {
	var errs []error
	report := func(format string, args ...interface{}) {
		if len(errs) < maxErrors {
			errs = append(errs, fmt.Errorf("watcher %d: "+format, append([]interface{}{rec.ID}, args...)...))
		}
	}
	for _, p := range rec.Problems {
		report("%s", p)
	}

	// Order and duplicates first, on the stream as received.
	var got []Event
	seen := map[Event]bool{}
	var maxRev int64
	for _, e := range rec.Events {
		if e.ModRev > log.To {
			continue
		}
		switch {
		case seen[e]:
			report("duplicate event %s", describeEvent(e))
			continue
		case e.ModRev < maxRev:
			report("event %s after one at revision %d", describeEvent(e), maxRev)
		}
		seen[e] = true
		maxRev = max(maxRev, e.ModRev)
		got = append(got, e)
	}

	// Then the stream, without its repeats, against the log.
	want := log.Events
	i, j := 0, 0
	for i < len(got) && j < len(want) && len(errs) < maxErrors {
		e, l := got[i], want[j]
		switch {
		case e == l:
			i++
			j++
		case e.ModRev == l.ModRev && e.Key == l.Key:
			report("event %s where the log has %s", describeEvent(e), describeEvent(l))
			i++
			j++
		case l.ModRev < e.ModRev || laterInRevision(want[j+1:], e):
			report("gap: missing %s before %s", describeEvent(l), describeEvent(e))
			j++
		default:
			report("event %s not in the log", describeEvent(e))
			i++
		}
	}
	for ; i < len(got); i++ {
		report("event %s not in the log", describeEvent(got[i]))
	}
	if j < len(want) {
		report("gap: %d events of the log missing from %s on", len(want)-j, describeEvent(want[j]))
	}
	return errs
}

// laterInRevision says whether e is among the first events of evs that
// share its revision: then the event before them is the missing one.
func laterInRevision(evs []Event, e Event) bool {
	for _, ev := range evs {
		if ev.ModRev != e.ModRev {
			return false
		}
		if ev == e {
			return true
		}
	}
	return false
}

func describeEvent(e Event) string {
	if e.Type == EventDelete {
		return fmt.Sprintf("delete(%s)@%d", e.Key, e.ModRev)
	}
	return fmt.Sprintf("put(%s=%q c%d v%d)@%d", e.Key, e.Value, e.CreateRev, e.Version, e.ModRev)
}
