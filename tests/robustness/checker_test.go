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

func TestChecker(t *testing.T) {
	tests := []struct {
		name string
		ops  []porcupine.Operation
		// persisted, when set, is the store's event log of put values.
		persisted map[string]int64
		want      porcupine.CheckResult
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
			persisted: map[string]int64{"written": 2, "1": 3},
			want:      porcupine.Ok,
		},
		{
			name: "event log says a failed write was never made, yet it was read",
			ops: []porcupine.Operation{
				failedPut(0, 0, 1, "a", "ghost"),
				get(1, 2, 3, "a", "ghost", 2, 2, 1, 2),
			},
			persisted: map[string]int64{},
			want:      porcupine.Illegal,
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := Check(Model(1), prepare(tc.ops, tc.persisted), 10*time.Second)
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
