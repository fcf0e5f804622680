package robustness

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Recorder collects the operations of every client worker of one run,
// with invocation and return times taken on the client side from one
// monotonic clock.
type Recorder struct {
	start time.Time

	mu         sync.Mutex
	ops        []porcupine.Operation
	nextClient int
}

// NewRecorder starts a history whose clock reads zero now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// now is the time since the recorder started. time.Since reads Go's
// monotonic clock, so wall clock steps do not reorder operations.
func (r *Recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *Recorder) newClientID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.nextClient
	r.nextClient++
	return id
}

func (r *Recorder) add(op porcupine.Operation) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Client is one worker's recording client. Its methods must be called
// from one goroutine at a time, as a worker issues one request at a time.
type Client struct {
	r       *Recorder
	c       *clientv3.Client
	timeout time.Duration
	id      int
}

// NewClient wraps c; every request gets its own timeout.
func (r *Recorder) NewClient(c *clientv3.Client, timeout time.Duration) *Client {
	return &Client{r: r, c: c, timeout: timeout, id: r.newClientID()}
}

// do runs one request and records it. After a failed request the worker
// continues under a fresh client id: the failed operation stays open to
// the end of the history, and porcupine's visualisation wants the
// operations of one client id not to overlap.
func (cl *Client) do(in Input, fn func(ctx context.Context) Output) Output {
	ctx, cancel := context.WithTimeout(context.Background(), cl.timeout)
	defer cancel()
	call := cl.r.now()
	out := fn(ctx)
	ret := cl.r.now()
	cl.r.add(porcupine.Operation{ClientId: cl.id, Input: in, Call: call, Output: out, Return: ret})
	if out.Err != "" {
		cl.id = cl.r.newClientID()
	}
	return out
}

// Put writes key=value, attached to lease (0: none).
func (cl *Client) Put(key, value string, lease int64) Output {
	return cl.do(Input{Kind: OpPut, Key: key, Value: value, LeaseID: lease}, func(ctx context.Context) Output {
		resp, err := cl.c.Put(ctx, key, value, clientv3.WithLease(clientv3.LeaseID(lease)))
		if err != nil {
			return leaseErrOutput(err)
		}
		return Output{Revision: resp.Header.Revision}
	})
}

// Get reads key with a linearizable (quorum) read.
func (cl *Client) Get(key string) Output {
	return cl.do(Input{Kind: OpGet, Key: key}, func(ctx context.Context) Output {
		resp, err := cl.c.Get(ctx, key)
		if err != nil {
			return Output{Err: err.Error()}
		}
		return readOutput(resp.Header.Revision, resp.Kvs)
	})
}

// Delete deletes key.
func (cl *Client) Delete(key string) Output {
	return cl.do(Input{Kind: OpDelete, Key: key}, func(ctx context.Context) Output {
		resp, err := cl.c.Delete(ctx, key)
		if err != nil {
			return Output{Err: err.Error()}
		}
		return Output{Revision: resp.Header.Revision, Deleted: resp.Deleted}
	})
}

// Txn writes key=value if key's mod revision is expectModRev (0 for an
// absent key) and reads key otherwise.
func (cl *Client) Txn(key string, expectModRev int64, value string) Output {
	in := Input{Kind: OpTxn, Key: key, Value: value, ExpectModRev: expectModRev}
	return cl.do(in, func(ctx context.Context) Output {
		resp, err := cl.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", expectModRev)).
			Then(clientv3.OpPut(key, value)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return Output{Err: err.Error()}
		}
		if resp.Succeeded {
			return Output{Revision: resp.Header.Revision, Succeeded: true}
		}
		if len(resp.Responses) != 1 || resp.Responses[0].GetResponseRange() == nil {
			// Not a response the model can describe: record it as one
			// that no state matches.
			return Output{Revision: -1}
		}
		return readOutput(resp.Header.Revision, resp.Responses[0].GetResponseRange().Kvs)
	})
}

// Range reads every key in [key, end), at most limit of them (0: all),
// with a linearizable read.
func (cl *Client) Range(key, end string, limit int64) Output {
	in := Input{Kind: OpRange, Key: key, End: end, Limit: limit}
	return cl.do(in, func(ctx context.Context) Output {
		resp, err := cl.c.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(limit))
		if err != nil {
			return Output{Err: err.Error()}
		}
		return rangeOutput(resp.Header.Revision, resp.Kvs, resp.Count, resp.More)
	})
}

// MultiTxn runs "if every compare of cmps holds then apply then, else
// range [elseKey, elseEnd)" as one txn.
func (cl *Client) MultiTxn(cmps []Cmp, then []TxnOp, elseKey, elseEnd string) Output {
	in := Input{Kind: OpMultiTxn, Key: elseKey, End: elseEnd, Cmps: cmps, Then: then}
	return cl.do(in, func(ctx context.Context) Output {
		ifs := make([]clientv3.Cmp, len(cmps))
		for i, c := range cmps {
			ifs[i] = clientv3.Compare(clientv3.ModRevision(c.Key), "=", c.ModRev)
		}
		ops := make([]clientv3.Op, len(then))
		for i, op := range then {
			if op.Kind == OpPut {
				ops[i] = clientv3.OpPut(op.Key, op.Value)
			} else {
				ops[i] = clientv3.OpDelete(op.Key)
			}
		}
		resp, err := cl.c.Txn(ctx).If(ifs...).Then(ops...).
			Else(clientv3.OpGet(elseKey, clientv3.WithRange(elseEnd))).Commit()
		if err != nil {
			return Output{Err: err.Error()}
		}
		if resp.Succeeded {
			out := Output{Revision: resp.Header.Revision, Succeeded: true}
			for _, r := range resp.Responses {
				if d := r.GetResponseDeleteRange(); d != nil {
					out.Deleted += d.Deleted
				}
			}
			return out
		}
		if len(resp.Responses) != 1 || resp.Responses[0].GetResponseRange() == nil {
			return Output{Revision: -1}
		}
		r := resp.Responses[0].GetResponseRange()
		return rangeOutput(resp.Header.Revision, r.Kvs, r.Count, r.More)
	})
}

// Compact compacts the store's history at rev. The server's refusals
// (already compacted, future revision) are definite outcomes and are
// recorded as such, not as unknown ones.
func (cl *Client) Compact(rev int64) Output {
	return cl.do(Input{Kind: OpCompact, Revision: rev}, func(ctx context.Context) Output {
		resp, err := cl.c.Compact(ctx, rev)
		switch {
		case err == nil:
			return Output{Revision: resp.Header.Revision}
		case strings.Contains(err.Error(), "required revision has been compacted"):
			return Output{CompactErr: CompactedErr}
		case strings.Contains(err.Error(), "required revision is a future revision"):
			return Output{CompactErr: FutureErr}
		}
		return Output{Err: err.Error()}
	})
}

func readOutput(rev int64, kvs []*mvccpb.KeyValue) Output {
	out := Output{Revision: rev}
	if len(kvs) > 0 {
		kv := kvs[0]
		out.Found = true
		out.Value = string(kv.Value)
		out.ModRev = kv.ModRevision
		out.CreateRev = kv.CreateRevision
		out.Version = kv.Version
		out.Lease = kv.Lease
	}
	return out
}

func rangeOutput(rev int64, kvs []*mvccpb.KeyValue, count int64, more bool) Output {
	out := Output{Revision: rev, Count: count, More: more, KVs: make([]KV, len(kvs))}
	for i, kv := range kvs {
		out.KVs[i] = KV{Key: string(kv.Key), Value: string(kv.Value), CreateRev: kv.CreateRevision, ModRev: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
	}
	return out
}

// Operations returns the history to check; see prepare.
func (r *Recorder) Operations(log *EventLog) []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return prepare(r.ops, log)
}

// prepare turns a recorded history into the one to check. Reads that
// failed are left out, as they changed nothing and returned nothing.
// Writes that failed may take effect at any time after their call, or
// never, so they get an infinite return time.
//
// Every such write costs the checker a search step at each later point
// of the history, which makes long histories with many of them too
// costly. log, when not nil, is the store's own event log of the run,
// complete up to a revision no lower than any a recorded operation saw.
// As in etcd's robustness suite it is then trusted to settle failed
// writes:
//
//   - A put, txn or multi-op txn writes a value no other request writes.
//     If that value is not in the log, the request never took effect (or
//     took effect after everything recorded, which is the same, or went
//     to its else branch, which changes nothing) and is dropped. If it
//     was written at revision R, the request must have taken effect
//     before any successful operation that reported a revision of R or
//     more returned.
//   - A delete leaves no value behind, so it can only be dropped when it
//     cannot have removed anything: when the log holds no delete event
//     of its key that a successful request does not account for. A
//     delete of an absent key changes nothing, not even the revision, so
//     dropping it loses nothing. Otherwise it stays open to the end.
//   - A compaction leaves nothing in the log and stays open, as does a
//     revoke: nothing tells which deletes in the log are its own.
//   - A failed grant or keep-alive is dropped: the workload never uses a
//     lease whose grant failed, and a renewal changes nothing.
func prepare(ops []porcupine.Operation, log *EventLog) []porcupine.Operation {
	var written map[string]int64
	var deleted map[string]bool
	if log != nil {
		written = log.Written()
		deleted = unexplainedDeletes(log, ops)
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		in, res := op.Input.(Input), op.Output.(Output)
		if res.Err == "" {
			out = append(out, op)
			continue
		}
		value, writesValue := uniqueValue(in)
		switch {
		case in.Kind == OpGet || in.Kind == OpRange || in.Kind == OpKeepAlive || in.Kind == OpAlarm:
			continue
		case in.Kind == OpGrant:
			// The workload uses no lease whose grant failed, so a
			// lease it may have granted changes nothing it reads.
			continue
		case log != nil && writesValue:
			rev, ok := written[value]
			if !ok {
				continue
			}
			op.Return = firstReturnAtOrAfter(ops, rev)
		case log != nil && in.Kind == OpDelete && !deleted[in.Key]:
			continue
		default:
			op.Return = math.MaxInt64
		}
		out = append(out, op)
	}
	return out
}

// uniqueValue is a value that only this request can write, if it writes
// one whenever it changes anything. A multi-op txn whose then branch has
// no put (never generated by the workload) has none.
func uniqueValue(in Input) (string, bool) {
	switch in.Kind {
	case OpPut, OpTxn:
		return in.Value, true
	case OpMultiTxn:
		for _, op := range in.Then {
			if op.Kind == OpPut {
				return op.Value, true
			}
		}
	}
	return "", false
}

// unexplainedDeletes returns the keys with a delete event in the log at
// a revision that no successful recorded request wrote. Each revision is
// the work of exactly one request, so a revision that a successful write
// reported is accounted for, whatever events it holds.
func unexplainedDeletes(log *EventLog, ops []porcupine.Operation) map[string]bool {
	explained := map[int64]bool{}
	for _, op := range ops {
		if in, res := op.Input.(Input), op.Output.(Output); res.Err == "" && changedStore(in, res) {
			explained[res.Revision] = true
		}
	}
	keys := map[string]bool{}
	for _, ev := range log.Events {
		if ev.Type == EventDelete && !explained[ev.ModRev] {
			keys[ev.Key] = true
		}
	}
	return keys
}

// changedStore says whether a successful request wrote something, and so
// moved the revision to the one its response reports.
func changedStore(in Input, out Output) bool {
	switch in.Kind {
	case OpPut:
		return true
	case OpDelete:
		return out.Deleted > 0
	case OpTxn:
		return out.Succeeded
	case OpMultiTxn:
		if !out.Succeeded {
			return false
		}
		if out.Deleted > 0 {
			return true
		}
		_, puts := uniqueValue(in)
		return puts
	}
	return false
}

// firstReturnAtOrAfter is the earliest return time of a successful
// operation whose response revision is rev or more, or infinity.
func firstReturnAtOrAfter(ops []porcupine.Operation, rev int64) int64 {
	first := int64(math.MaxInt64)
	for _, op := range ops {
		if res := op.Output.(Output); res.Err == "" && res.CompactErr == "" && res.Revision >= rev && op.Return < first {
			first = op.Return
		}
	}
	return first
}

// Check checks a prepared history against the model within timeout.
func Check(model porcupine.Model, ops []porcupine.Operation, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(model, ops, timeout)
}

// recordedOp is one operation as written to history.json.
type recordedOp struct {
	Client int    `json:"client"`
	Call   int64  `json:"call"`
	Return int64  `json:"return"`
	Input  Input  `json:"input"`
	Output Output `json:"output"`
}

// WriteResults writes the history as JSON and porcupine's HTML
// visualisation of the check into dir.
func WriteResults(dir string, model porcupine.Model, ops []porcupine.Operation, info porcupine.LinearizationInfo) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rec := make([]recordedOp, len(ops))
	for i, op := range ops {
		rec[i] = recordedOp{Client: op.ClientId, Call: op.Call, Return: op.Return, Input: op.Input.(Input), Output: op.Output.(Output)}
	}
	b, err := json.MarshalIndent(rec, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "history.json"), b, 0o644); err != nil {
		return err
	}
	return porcupine.VisualizePath(model, info, filepath.Join(dir, "visualization.html"))
}

// leaseErrOutput records err, telling the server's definite "lease not
// found" from an unknown outcome.
func leaseErrOutput(err error) Output {
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return Output{LeaseErr: LeaseNotFound}
	}
	return Output{Err: err.Error()}
}

// Grant grants a lease of ttl seconds.
func (cl *Client) Grant(ttl int64) Output {
	return cl.do(Input{Kind: OpGrant}, func(ctx context.Context) Output {
		resp, err := cl.c.Grant(ctx, ttl)
		if err != nil {
			return Output{Err: err.Error()}
		}
		return Output{Revision: resp.ResponseHeader.Revision, LeaseID: int64(resp.ID)}
	})
}

// Revoke revokes lease id.
//
// It calls the gRPC method itself: clientv3's Revoke counts as safe to
// repeat, and sends it again after an Unavailable error, such as a
// connection cut by a kill just after the first attempt applied; the
// repeat then answers "lease not found", which the model takes as
// definite. Called this way, it is sent again only when it certainly never
// left (clientv3's rule for writes).
func (cl *Client) Revoke(id int64) Output {
	return cl.do(Input{Kind: OpRevoke, LeaseID: id}, func(ctx context.Context) Output {
		resp, err := pb.NewLeaseClient(cl.c.ActiveConnection()).LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id})
		if err != nil {
			return leaseErrOutput(rpctypes.Error(err))
		}
		return Output{Revision: resp.Header.Revision}
	})
}

// KeepAlive renews lease id once.
func (cl *Client) KeepAlive(id int64) Output {
	return cl.do(Input{Kind: OpKeepAlive, LeaseID: id}, func(ctx context.Context) Output {
		resp, err := cl.c.KeepAliveOnce(ctx, clientv3.LeaseID(id))
		if err != nil {
			return leaseErrOutput(err)
		}
		return Output{Revision: resp.ResponseHeader.Revision, Succeeded: resp.TTL > 0}
	})
}

// Alarm lists the active alarms, or disarms NOSPACE for every member
// (member ID 0), as action says ("list" or "disarm").
func (cl *Client) Alarm(action string) Output {
	return cl.do(Input{Kind: OpAlarm, Alarm: action}, func(ctx context.Context) Output {
		var resp *clientv3.AlarmResponse
		var err error
		if action == "disarm" {
			resp, err = cl.c.AlarmDisarm(ctx, &clientv3.AlarmMember{Alarm: pb.AlarmType_NOSPACE})
		} else {
			resp, err = cl.c.AlarmList(ctx)
		}
		if err != nil {
			return Output{Err: err.Error()}
		}
		return Output{Revision: resp.Header.Revision, Alarms: len(resp.Alarms)}
	})
}
