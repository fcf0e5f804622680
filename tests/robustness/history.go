package robustness

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/mvccpb"
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

// Put writes key=value.
func (cl *Client) Put(key, value string) Output {
	return cl.do(Input{Kind: OpPut, Key: key, Value: value}, func(ctx context.Context) Output {
		resp, err := cl.c.Put(ctx, key, value)
		if err != nil {
			return Output{Err: err.Error()}
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

func readOutput(rev int64, kvs []*mvccpb.KeyValue) Output {
	out := Output{Revision: rev}
	if len(kvs) > 0 {
		kv := kvs[0]
		out.Found = true
		out.Value = string(kv.Value)
		out.ModRev = kv.ModRevision
		out.CreateRev = kv.CreateRevision
		out.Version = kv.Version
	}
	return out
}

// Operations returns the history to check; see prepare.
func (r *Recorder) Operations(persisted map[string]int64) []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return prepare(r.ops, persisted)
}

// prepare turns a recorded history into the one to check. Reads that
// failed are left out, as they changed nothing and returned nothing.
// Writes that failed may take effect at any time after their call, or
// never, so they get an infinite return time.
//
// Every such write costs the checker a search step at each later point
// of the history, which makes long histories with many of them too
// costly. persisted, when not nil, is what the store's own event log
// (a watch replayed after the run) says was written: the revision at
// which each put value was written. As in etcd's robustness suite it is
// then trusted to settle failed puts and txns: one whose value was never
// written is dropped, and one that was written at revision R must have
// taken effect before any successful operation that reported a revision
// of R or more returned. Failed deletes stay open to the end.
func prepare(ops []porcupine.Operation, persisted map[string]int64) []porcupine.Operation {
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		in, res := op.Input.(Input), op.Output.(Output)
		if res.Err == "" {
			out = append(out, op)
			continue
		}
		switch {
		case in.Kind == OpGet:
			continue
		case persisted != nil && (in.Kind == OpPut || in.Kind == OpTxn):
			rev, ok := persisted[in.Value]
			if !ok {
				continue
			}
			op.Return = firstReturnAtOrAfter(ops, rev)
		default:
			op.Return = math.MaxInt64
		}
		out = append(out, op)
	}
	return out
}

// firstReturnAtOrAfter is the earliest return time of a successful
// operation whose response revision is rev or more, or infinity.
func firstReturnAtOrAfter(ops []porcupine.Operation, rev int64) int64 {
	first := int64(math.MaxInt64)
	for _, op := range ops {
		if res := op.Output.(Output); res.Err == "" && res.Revision >= rev && op.Return < first {
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
