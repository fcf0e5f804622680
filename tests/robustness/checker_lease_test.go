package robustness

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func grant(client int, call, ret int64, id, rev int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpGrant}, Output: Output{Revision: rev, LeaseID: id}}
}

func putLease(client int, call, ret int64, key, value string, lease int64, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpPut, Key: key, Value: value, LeaseID: lease}, Output: out}
}

func revoke(client int, call, ret int64, id int64, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpRevoke, LeaseID: id}, Output: out}
}

func keepAlive(client int, call, ret int64, id int64, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpKeepAlive, LeaseID: id}, Output: out}
}

func getLeased(client int, call, ret int64, key, value string, createRev, modRev, version, lease, rev int64) porcupine.Operation {
	op := get(client, call, ret, key, value, createRev, modRev, version, rev)
	out := op.Output.(Output)
	out.Lease = lease
	op.Output = out
	return op
}

var notFound = Output{LeaseErr: LeaseNotFound}

// TestCheckerLeases feeds the model lease histories, good and bad: each
// bad one is an anomaly kvd must never show (a key of a live lease gone,
// a revoke that leaves keys or deletes them at two revisions, a renewal
// of a live lease refused, a key reported with the wrong lease).
func TestCheckerLeases(t *testing.T) {
	// grant 7, a:=1 on 7, b:=1 on 7, c:=1 without a lease (rev 2..4)
	setup := []porcupine.Operation{
		grant(0, 0, 1, 7, 1),
		putLease(0, 2, 3, "a", "1", 7, Output{Revision: 2}),
		putLease(0, 4, 5, "b", "1", 7, Output{Revision: 3}),
		put(0, 6, 7, "c", "1", 4),
	}
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"revoke deletes the lease's keys at one revision", []porcupine.Operation{
			getLeased(1, 8, 9, "a", "1", 2, 2, 1, 7, 4),
			keepAlive(1, 10, 11, 7, Output{Revision: 4, Succeeded: true}),
			revoke(1, 12, 13, 7, Output{Revision: 5}),
			getAbsent(1, 14, 15, "b", 5),
			get(1, 16, 17, "c", "1", 4, 4, 1, 5),
			keepAlive(1, 18, 19, 7, notFound),
			putLease(1, 20, 21, "d", "1", 7, notFound),
			revoke(1, 22, 23, 7, notFound),
		}, porcupine.Ok},
		{"a key put again without a lease outlives it", []porcupine.Operation{
			putLease(1, 8, 9, "a", "2", 0, Output{Revision: 5}),
			revoke(1, 10, 11, 7, Output{Revision: 6}),
			get(1, 12, 13, "a", "2", 2, 5, 2, 6),
		}, porcupine.Ok},
		{"a key of a live lease vanishes", []porcupine.Operation{
			keepAlive(1, 8, 9, 7, Output{Revision: 4, Succeeded: true}),
			getAbsent(1, 10, 11, "a", 4),
		}, porcupine.Illegal},
		{"a revoke leaves a key", []porcupine.Operation{
			revoke(1, 8, 9, 7, Output{Revision: 5}),
			getLeased(1, 10, 11, "b", "1", 3, 3, 1, 7, 5),
		}, porcupine.Illegal},
		{"a revoke takes two revisions", []porcupine.Operation{
			revoke(1, 8, 9, 7, Output{Revision: 6}),
		}, porcupine.Illegal},
		{"a renewal of a live lease refused", []porcupine.Operation{
			keepAlive(1, 8, 9, 7, notFound),
		}, porcupine.Illegal},
		{"a put with a live lease refused", []porcupine.Operation{
			putLease(1, 8, 9, "d", "1", 7, notFound),
		}, porcupine.Illegal},
		{"a key read with the wrong lease", []porcupine.Operation{
			getLeased(1, 8, 9, "c", "1", 4, 4, 1, 7, 4),
		}, porcupine.Illegal},
		{"a failed revoke may have happened", []porcupine.Operation{
			revoke(1, 8, 9, 7, Output{Err: "timeout"}),
			getAbsent(2, 10, 11, "a", 5),
		}, porcupine.Ok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops := append(append([]porcupine.Operation{}, setup...), tc.ops...)
			res, _ := Check(Model(1), prepare(ops, nil), 10*time.Second)
			if res != tc.want {
				t.Fatalf("check = %s, want %s", res, tc.want)
			}
		})
	}
}

func alarm(client int, call, ret int64, action string, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: Input{Kind: OpAlarm, Alarm: action}, Output: out}
}

// TestCheckerAlarms: alarm requests change nothing the model holds, and
// since the workload never fills the quota, an answer naming an alarm is
// an anomaly; a failed one may be dropped.
func TestCheckerAlarms(t *testing.T) {
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"list and disarm between writes", []porcupine.Operation{
			put(0, 0, 1, "a", "1", 2),
			alarm(0, 2, 3, "list", Output{Revision: 2}),
			alarm(1, 2, 4, "disarm", Output{Revision: 2}),
			put(0, 5, 6, "a", "2", 3),
			get(1, 7, 8, "a", "2", 2, 3, 2, 3),
		}, porcupine.Ok},
		{"a failed alarm request", []porcupine.Operation{
			alarm(0, 0, 1, "disarm", Output{Err: "timeout"}),
			put(0, 2, 3, "a", "1", 2),
		}, porcupine.Ok},
		{"an alarm nobody raised", []porcupine.Operation{
			put(0, 0, 1, "a", "1", 2),
			alarm(0, 2, 3, "list", Output{Revision: 2, Alarms: 1}),
		}, porcupine.Illegal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := Check(Model(1), prepare(tc.ops, nil), 10*time.Second)
			if res != tc.want {
				t.Fatalf("check = %s, want %s", res, tc.want)
			}
		})
	}
}
