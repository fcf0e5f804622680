package robustness

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Helpers that build recorded operations by hand. Times are arbitrary
// units; [call, ret] is the operation's interval.

func put(client int, call, ret int64, key, value string, rev int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpPut, Key: key, Value: value}, Output: Output{Revision: rev}}
}

func failedPut(client int, call, ret int64, key, value string) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpPut, Key: key, Value: value}, Output: Output{Err: "context deadline exceeded"}}
}

func get(client int, call, ret int64, key, value string, createRev, modRev, version, rev int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input:  Input{Kind: OpGet, Key: key},
		Output: Output{Revision: rev, Found: true, Value: value, CreateRev: createRev, ModRev: modRev, Version: version}}
}

func getAbsent(client int, call, ret int64, key string, rev int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpGet, Key: key}, Output: Output{Revision: rev}}
}

func failedGet(client int, call, ret int64, key string) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpGet, Key: key}, Output: Output{Err: "unavailable"}}
}

func del(client int, call, ret int64, key string, deleted, rev int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpDelete, Key: key}, Output: Output{Revision: rev, Deleted: deleted}}
}

func txnOK(client int, call, ret int64, key string, expect int64, value string, rev int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input:  Input{Kind: OpTxn, Key: key, Value: value, ExpectModRev: expect},
		Output: Output{Revision: rev, Succeeded: true}}
}

func txnElse(client int, call, ret int64, key string, expect int64, value string, got Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpTxn, Key: key, Value: value, ExpectModRev: expect}, Output: got}
}

func failedDel(client int, call, ret int64, key string) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpDelete, Key: key}, Output: Output{Err: "context deadline exceeded"}}
}

func kv(key, value string, createRev, modRev, version int64) KV {
	return KV{Key: key, Value: value, CreateRev: createRev, ModRev: modRev, Version: version}
}

// rangeOp reads [key, end) with a limit; more is derived from the count.
func rangeOp(client int, call, ret int64, key, end string, limit, count, rev int64, kvs ...KV) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input:  Input{Kind: OpRange, Key: key, End: end, Limit: limit},
		Output: Output{Revision: rev, KVs: kvs, Count: count, More: int64(len(kvs)) < count}}
}

func multiTxn(client int, call, ret int64, cmps []Cmp, then []TxnOp, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpMultiTxn, Key: "a", End: "z", Cmps: cmps, Then: then}, Output: out}
}

func compactOp(client int, call, ret int64, rev int64, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpCompact, Revision: rev}, Output: out}
}

func putEv(key, value string, createRev, modRev, version int64) Event {
	return Event{Type: EventPut, Key: key, Value: value, CreateRev: createRev, ModRev: modRev, Version: version}
}

func delEv(key string, rev int64) Event { return Event{Type: EventDelete, Key: key, ModRev: rev} }

func TestChecker(t *testing.T) {
	tests := []struct {
		name string
		ops  []porcupine.Operation
		// log, when set, is the store's event log of the run.
		log  *EventLog
		want porcupine.CheckResult
	}{
		{
			name: "sequential puts, reads, delete and txns",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				get(0, 2, 3, "a", "1", 2, 2, 1, 2),
				put(0, 4, 5, "a", "2", 3),
				get(1, 6, 7, "a", "2", 2, 3, 2, 3),
				txnOK(1, 8, 9, "a", 3, "3", 4),
				txnElse(0, 10, 11, "a", 3, "4", Output{Revision: 4, Found: true, Value: "3", CreateRev: 2, ModRev: 4, Version: 3}),
				del(0, 12, 13, "a", 1, 5),
				del(0, 14, 15, "a", 0, 5),
				getAbsent(1, 16, 17, "a", 5),
				txnOK(1, 18, 19, "a", 0, "5", 6),
				get(0, 20, 21, "a", "5", 6, 6, 1, 6),
			},
			want: porcupine.Ok,
		},
		{
			name: "concurrent writes ordered by their revisions, not their calls",
			ops: []porcupine.Operation{
				put(0, 0, 10, "a", "x", 3),
				put(1, 1, 9, "b", "y", 2),
				get(2, 2, 8, "a", "x", 3, 3, 1, 3),
				get(2, 11, 12, "b", "y", 2, 2, 1, 3),
			},
			want: porcupine.Ok,
		},
		{
			name: "failed writes: one took effect, one never did",
			ops: []porcupine.Operation{
				failedPut(0, 0, 1, "a", "maybe"),
				failedPut(1, 0, 1, "b", "never"),
				failedGet(2, 0, 1, "a"),
				put(2, 2, 3, "c", "1", 3),
				get(2, 4, 5, "a", "maybe", 2, 2, 1, 3),
				getAbsent(2, 6, 7, "b", 3),
			},
			want: porcupine.Ok,
		},
		{
			name: "a failed write may take effect long after its error",
			ops: []porcupine.Operation{
				failedPut(0, 0, 1, "a", "late"),
				getAbsent(1, 2, 3, "a", 1),
				put(1, 4, 5, "b", "1", 2),
				get(1, 6, 7, "a", "late", 3, 3, 1, 3),
			},
			want: porcupine.Ok,
		},
		{
			name: "failed writes settled by the event log",
			ops: []porcupine.Operation{
				failedPut(0, 0, 1, "a", "written"),
				failedPut(1, 0, 1, "b", "dropped"),
				put(2, 2, 3, "c", "1", 3),
				get(2, 4, 5, "a", "written", 2, 2, 1, 3),
				getAbsent(2, 6, 7, "b", 3),
			},
			log: &EventLog{From: 1, To: 3, Events: []Event{
				putEv("a", "written", 2, 2, 1), putEv("c", "1", 3, 3, 1)}},
			want: porcupine.Ok,
		},
		{
			name: "event log says a failed write was never made, yet it was read",
			ops: []porcupine.Operation{
				failedPut(0, 0, 1, "a", "ghost"),
				get(1, 2, 3, "a", "ghost", 2, 2, 1, 2),
			},
			log:  &EventLog{From: 1, To: 1},
			want: porcupine.Illegal,
		},
		{
			name: "stale read",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				put(0, 2, 3, "a", "2", 3),
				// Called after the second put returned, yet sees the first.
				get(1, 4, 5, "a", "1", 2, 2, 1, 2),
			},
			want: porcupine.Illegal,
		},
		{
			name: "lost acknowledged write",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				put(0, 2, 3, "b", "1", 3),
				// Revision 3 is current, but the write at 2 is gone.
				getAbsent(1, 4, 5, "a", 3),
			},
			want: porcupine.Illegal,
		},
		{
			name: "revision goes backwards",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				put(0, 2, 3, "a", "2", 3),
				put(1, 4, 5, "b", "1", 2),
			},
			want: porcupine.Illegal,
		},
		{
			name: "read with a wrong header revision",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				get(1, 2, 3, "a", "1", 2, 2, 1, 5),
			},
			want: porcupine.Illegal,
		},
		{
			name: "write reports a revision it did not move to",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				put(0, 2, 3, "a", "2", 2),
			},
			want: porcupine.Illegal,
		},
		{
			name: "txn succeeds although the compare must fail",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				put(0, 2, 3, "a", "2", 3),
				txnOK(1, 4, 5, "a", 2, "3", 4),
			},
			want: porcupine.Illegal,
		},
		{
			name: "delete of an absent key moves the revision",
			ops: []porcupine.Operation{
				del(0, 0, 1, "a", 0, 2),
			},
			want: porcupine.Illegal,
		},
		{
			name: "wrong version after a delete and re-create",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				del(0, 2, 3, "a", 1, 3),
				put(0, 4, 5, "a", "2", 4),
				get(0, 6, 7, "a", "2", 2, 4, 2, 4),
			},
			want: porcupine.Illegal,
		},
		{
			name: "range reads, with and without a limit",
			ops: []porcupine.Operation{
				put(0, 0, 1, "b", "1", 2),
				put(0, 2, 3, "a", "1", 3),
				rangeOp(1, 4, 5, "a", "z", 0, 2, 3, kv("a", "1", 3, 3, 1), kv("b", "1", 2, 2, 1)),
				rangeOp(1, 6, 7, "a", "z", 1, 2, 3, kv("a", "1", 3, 3, 1)),
				rangeOp(1, 8, 9, "b", "c", 0, 1, 3, kv("b", "1", 2, 2, 1)),
				rangeOp(1, 10, 11, "c", "z", 0, 0, 3),
			},
			want: porcupine.Ok,
		},
		{
			name: "range missing a key",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				put(0, 2, 3, "b", "1", 3),
				rangeOp(1, 4, 5, "a", "z", 0, 1, 3, kv("b", "1", 3, 3, 1)),
			},
			want: porcupine.Illegal,
		},
		{
			name: "range with a wrong count",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				put(0, 2, 3, "b", "1", 3),
				// A limit of 1 returns one key, but the count is of all.
				rangeOp(1, 4, 5, "a", "z", 1, 1, 3, kv("a", "1", 2, 2, 1)),
			},
			want: porcupine.Illegal,
		},
		{
			name: "multi-op txn: both writes at one revision, deletes of absent keys keep it",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				put(0, 2, 3, "b", "1", 3),
				multiTxn(0, 4, 5, []Cmp{{"a", 2}, {"b", 3}}, []TxnOp{{Kind: OpPut, Key: "a", Value: "2"}, {Kind: OpDelete, Key: "b", Value: ""}},
					Output{Succeeded: true, Deleted: 1, Revision: 4}),
				rangeOp(1, 6, 7, "a", "z", 0, 1, 4, kv("a", "2", 2, 4, 2)),
				multiTxn(1, 8, 9, []Cmp{{"b", 0}}, []TxnOp{{Kind: OpDelete, Key: "b", Value: ""}, {Kind: OpDelete, Key: "c", Value: ""}},
					Output{Succeeded: true, Revision: 4}),
				multiTxn(1, 10, 11, []Cmp{{"a", 2}}, []TxnOp{{Kind: OpPut, Key: "c", Value: "1"}},
					Output{Revision: 4, KVs: []KV{kv("a", "2", 2, 4, 2)}, Count: 1}),
			},
			want: porcupine.Ok,
		},
		{
			name: "multi-op txn partly applied",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				put(0, 2, 3, "b", "1", 3),
				multiTxn(0, 4, 5, []Cmp{{"a", 2}, {"b", 3}}, []TxnOp{{Kind: OpPut, Key: "a", Value: "2"}, {Kind: OpDelete, Key: "b", Value: ""}},
					Output{Succeeded: true, Deleted: 1, Revision: 4}),
				// The put is visible, the delete is not.
				rangeOp(1, 6, 7, "a", "z", 0, 2, 4, kv("a", "2", 2, 4, 2), kv("b", "1", 3, 3, 1)),
			},
			want: porcupine.Illegal,
		},
		{
			name: "multi-op txn takes a revision per write",
			ops: []porcupine.Operation{
				multiTxn(0, 0, 1, []Cmp{{"a", 0}, {"b", 0}}, []TxnOp{{Kind: OpPut, Key: "a", Value: "1"}, {Kind: OpPut, Key: "b", Value: "1"}},
					Output{Succeeded: true, Revision: 3}),
			},
			want: porcupine.Illegal,
		},
		{
			name: "multi-op txn of deletes of absent keys moves the revision",
			ops: []porcupine.Operation{
				multiTxn(0, 0, 1, []Cmp{{"a", 0}}, []TxnOp{{Kind: OpDelete, Key: "a", Value: ""}}, Output{Succeeded: true, Revision: 2}),
			},
			want: porcupine.Illegal,
		},
		{
			name: "compactions: success, already compacted, future",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				put(0, 2, 3, "a", "2", 3),
				compactOp(0, 4, 5, 2, Output{Revision: 3}),
				compactOp(1, 6, 7, 2, Output{CompactErr: CompactedErr}),
				compactOp(1, 8, 9, 1, Output{CompactErr: CompactedErr}),
				compactOp(1, 10, 11, 4, Output{CompactErr: FutureErr}),
				compactOp(1, 12, 13, 3, Output{Revision: 3}),
				get(0, 14, 15, "a", "2", 2, 3, 2, 3),
			},
			want: porcupine.Ok,
		},
		{
			name: "a failed compaction may explain a later refusal",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				compactOp(0, 2, 3, 2, Output{Err: "context deadline exceeded"}),
				compactOp(1, 4, 5, 2, Output{CompactErr: CompactedErr}),
			},
			want: porcupine.Ok,
		},
		{
			name: "compaction at a revision already compacted succeeds",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				compactOp(0, 2, 3, 2, Output{Revision: 2}),
				compactOp(1, 4, 5, 2, Output{Revision: 2}),
			},
			want: porcupine.Illegal,
		},
		{
			name: "compaction refused as compacted though never compacted",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				compactOp(1, 2, 3, 2, Output{CompactErr: CompactedErr}),
			},
			want: porcupine.Illegal,
		},
		{
			name: "compaction at the current revision refused as future",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				compactOp(1, 2, 3, 2, Output{CompactErr: FutureErr}),
			},
			want: porcupine.Illegal,
		},
		{
			name: "compaction reports a revision other than the current one",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				compactOp(1, 2, 3, 2, Output{Revision: 3}),
			},
			want: porcupine.Illegal,
		},
		{
			name: "failed delete kept open when the log shows an unexplained delete",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				failedDel(0, 2, 3, "a"),
				getAbsent(1, 4, 5, "a", 3),
			},
			log:  &EventLog{From: 1, To: 3, Events: []Event{putEv("a", "1", 2, 2, 1), delEv("a", 3)}},
			want: porcupine.Ok,
		},
		{
			name: "failed delete dropped by the log, yet the key vanished",
			ops: []porcupine.Operation{
				put(0, 0, 1, "a", "1", 2),
				failedDel(0, 2, 3, "a"),
				getAbsent(1, 4, 5, "a", 3),
			},
			log:  &EventLog{From: 1, To: 2, Events: []Event{putEv("a", "1", 2, 2, 1)}},
			want: porcupine.Illegal,
		},
		{
			name: "failed multi-op txn settled by the log",
			ops: []porcupine.Operation{
				put(0, 0, 1, "b", "1", 2),
				multiTxn(0, 2, 3, []Cmp{{"a", 0}, {"b", 2}}, []TxnOp{{Kind: OpPut, Key: "a", Value: "x"}, {Kind: OpDelete, Key: "b", Value: ""}},
					Output{Err: "context deadline exceeded"}),
				rangeOp(1, 4, 5, "a", "z", 0, 1, 3, kv("a", "x", 3, 3, 1)),
			},
			log:  &EventLog{From: 1, To: 3, Events: []Event{putEv("b", "1", 2, 2, 1), putEv("a", "x", 3, 3, 1), delEv("b", 3)}},
			want: porcupine.Ok,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := Check(Model(1), prepare(tc.ops, tc.log), 10*time.Second)
			if res != tc.want {
				t.Fatalf("check = %s, want %s", res, tc.want)
			}
		})
	}
}

// TestWriteResults checks that a failing check can be written out.
func TestWriteResults(t *testing.T) {
	ops := prepare([]porcupine.Operation{
		put(0, 0, 1, "a", "1", 2),
		get(1, 2, 3, "a", "1", 2, 2, 1, 5),
	}, nil)
	m := Model(1)
	res, info := Check(m, ops, 10*time.Second)
	if res != porcupine.Illegal {
		t.Fatalf("check = %s, want Illegal", res)
	}
	if err := WriteResults(t.TempDir(), m, ops, info); err != nil {
		t.Fatal(err)
	}
}

// TestPrepareSettlesDeletes checks when the event log lets a failed
// delete be dropped.
func TestPrepareSettlesDeletes(t *testing.T) {
	ops := []porcupine.Operation{
		put(0, 0, 1, "a", "1", 2),
		del(0, 2, 3, "a", 1, 3),
		failedDel(1, 2, 3, "a"),
		failedDel(2, 2, 3, "b"),
		failedDel(3, 2, 3, "c"),
	}
	log := &EventLog{From: 1, To: 4, Events: []Event{
		putEv("a", "1", 2, 2, 1),
		delEv("a", 3), // the successful delete's
		delEv("c", 4), // no successful request made revision 4
	}}
	kept := map[string]bool{}
	for _, op := range prepare(ops, log) {
		if op.Output.(Output).Err != "" {
			kept[op.Input.(Input).Key] = true
		}
	}
	if kept["a"] || kept["b"] || !kept["c"] {
		t.Fatalf("failed deletes kept: %v, want only c's", kept)
	}
}
