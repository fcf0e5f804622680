package robustness

import (
	"fmt"
	"strings"
)

// describe renders one operation for porcupine's visualisation and for
// the checkers' messages.
func describe(in Input, out Output) string {
	call := describeCall(in)
	if out.Err != "" {
		return call + " -> error (unknown outcome): " + out.Err
	}
	if out.LeaseErr != "" {
		return call + " -> refused: " + out.LeaseErr
	}
	switch in.Kind {
	case OpPut, OpRevoke:
		return fmt.Sprintf("%s -> rev %d", call, out.Revision)
	case OpGrant:
		return fmt.Sprintf("%s -> lease %x, rev %d", call, out.LeaseID, out.Revision)
	case OpKeepAlive:
		return fmt.Sprintf("%s -> renewed %v", call, out.Succeeded)
	case OpAlarm:
		return fmt.Sprintf("%s -> %d alarms", call, out.Alarms)
	case OpDelete:
		return fmt.Sprintf("%s -> deleted %d, rev %d", call, out.Deleted, out.Revision)
	case OpCompact:
		if out.CompactErr != "" {
			return fmt.Sprintf("%s -> refused: %s", call, out.CompactErr)
		}
		return fmt.Sprintf("%s -> rev %d", call, out.Revision)
	case OpTxn, OpMultiTxn:
		if out.Succeeded {
			return fmt.Sprintf("%s -> succeeded, deleted %d, rev %d", call, out.Deleted, out.Revision)
		}
	}
	if in.Kind == OpRange || in.Kind == OpMultiTxn {
		kvs := make([]string, len(out.KVs))
		for i, kv := range out.KVs {
			kvs[i] = describeKV(kv)
		}
		return fmt.Sprintf("%s -> [%s] count %d more %v, rev %d", call, strings.Join(kvs, ", "), out.Count, out.More, out.Revision)
	}
	if !out.Found {
		return fmt.Sprintf("%s -> absent, rev %d", call, out.Revision)
	}
	return fmt.Sprintf("%s -> %q c%d m%d v%d l%x, rev %d", call, out.Value, out.CreateRev, out.ModRev, out.Version, out.Lease, out.Revision)
}

func describeCall(in Input) string {
	switch in.Kind {
	case OpPut:
		if in.LeaseID != 0 {
			return fmt.Sprintf("put(%s, %q, lease %x)", in.Key, in.Value, in.LeaseID)
		}
		return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
	case OpGrant:
		return "grant()"
	case OpRevoke:
		return fmt.Sprintf("revoke(%x)", in.LeaseID)
	case OpKeepAlive:
		return fmt.Sprintf("keepalive(%x)", in.LeaseID)
	case OpAlarm:
		return fmt.Sprintf("alarm %s", in.Alarm)
	case OpGet:
		return fmt.Sprintf("get(%s)", in.Key)
	case OpRange:
		return fmt.Sprintf("range(%s, %s, limit %d)", in.Key, in.End, in.Limit)
	case OpDelete:
		return fmt.Sprintf("delete(%s)", in.Key)
	case OpTxn:
		return fmt.Sprintf("txn(mod(%s)==%d ? put %q : get)", in.Key, in.ExpectModRev, in.Value)
	case OpMultiTxn:
		cmps := make([]string, len(in.Cmps))
		for i, c := range in.Cmps {
			cmps[i] = fmt.Sprintf("mod(%s)==%d", c.Key, c.ModRev)
		}
		then := make([]string, len(in.Then))
		for i, op := range in.Then {
			if op.Kind == OpPut {
				then[i] = fmt.Sprintf("put(%s, %q)", op.Key, op.Value)
			} else {
				then[i] = fmt.Sprintf("delete(%s)", op.Key)
			}
		}
		return fmt.Sprintf("txn(%s ? %s : range(%s, %s))", strings.Join(cmps, " && "), strings.Join(then, "; "), in.Key, in.End)
	case OpCompact:
		return fmt.Sprintf("compact(%d)", in.Revision)
	}
	return string(in.Kind)
}

func describeKV(k KV) string {
	return fmt.Sprintf("%s=%q c%d m%d v%d l%x", k.Key, k.Value, k.CreateRev, k.ModRev, k.Version, k.Lease)
}
