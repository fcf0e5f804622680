// Package apply is kvd's state machine entry point: it applies each
// committed raft request, in log order, to the MVCC store (and, as they
// arrive, leases, auth and other request types, each one more case of the
// same dispatch), and it serves local reads with the same semantics.
package apply

import (
	"context"
	"errors"
	"log/slog"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/lease"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// errInternal reports a failure of kvd itself, never of the request.
var errInternal = status.Error(codes.Internal, "kvd: internal error applying request")

// Result is the outcome of applying one request.
type Result struct {
	Resp proto.Message
	Err  error
	// Physical closes when a compaction's old revisions are gone.
	Physical <-chan struct{}
}

// Applier applies requests to the store and the lessor.
type Applier struct {
	s      *mvcc.Store
	leases *lease.Lessor
	auth   *auth.Store
	alarms *Alarms
	lg     *slog.Logger
}

// New returns an applier over s, leases and the auth store as.
func New(s *mvcc.Store, leases *lease.Lessor, as *auth.Store, lg *slog.Logger) *Applier {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Applier{s: s, leases: leases, auth: as, alarms: NewAlarms(), lg: lg}
}

// Alarms is the set of active alarms the applier keeps and obeys.
func (a *Applier) Alarms() *Alarms { return a.alarms }

// Apply applies r, carried by the raft entry at index and term, and records
// index and term as applied in the same database batch.
func (a *Applier) Apply(index, term uint64, r *pb.InternalRaftRequest) *Result {
	res := &Result{}
	err := a.s.Write(index, term, func(t *mvcc.TxnWrite) error {
		if r.Alarm != nil {
			res.Resp = a.alarms.apply(t, r.Alarm)
			return nil
		}
		if res.Err = a.alarms.refuse(r); res.Err != nil {
			return nil
		}
		if res.Err = authorize(a.auth, a.leases, r); res.Err != nil {
			return nil
		}
		w := writer{t, a.leases}
		if resp, ok, err := w.applyAuth(a.auth, r); ok {
			res.Resp, res.Err = resp, err
			return nil
		}
		switch {
		case r.Put != nil:
			res.Resp, res.Err = w.put(r.Put)
		case r.DeleteRange != nil:
			res.Resp, res.Err = w.deleteRange(r.DeleteRange)
		case r.Txn != nil:
			res.Resp, res.Err = w.txn(r.Txn)
		case r.Compaction != nil:
			res.Resp, res.Physical, res.Err = compact(t, r.Compaction)
		case r.Range != nil:
			res.Resp, res.Err = rangeKeys(t, r.Range)
		case r.LeaseGrant != nil:
			res.Resp, res.Err = w.grant(r.LeaseGrant)
		case r.LeaseRevoke != nil:
			res.Resp, res.Err = w.revoke(r.LeaseRevoke)
		case r.LeaseCheckpoint != nil:
			res.Resp = w.checkpoint(r.LeaseCheckpoint)
		default:
			res.Err = rpctypes.ErrGRPCNotCapable
		}
		return nil
	})
	if err != nil {
		a.lg.Error("apply failed in storage", "index", index, "err", err)
		res.Err = errInternal
	}
	res.Err = ToGRPC(res.Err)
	return res
}

// ApplyNoop records index and term for an entry that changes no keys.
func (a *Applier) ApplyNoop(index, term uint64) { a.ApplyMeta(index, term) }

// Meta is a record about the member's raft state kept in the database.
type Meta struct{ Key, Value []byte }

// ApplyMeta records index and term for an entry that changes no keys,
// with records committed in the same batch: a membership change's
// outcome must never be on disk without its index, or the reverse.
func (a *Applier) ApplyMeta(index, term uint64, meta ...Meta) {
	err := a.s.Write(index, term, func(t *mvcc.TxnWrite) error {
		for _, m := range meta {
			t.PutMeta(m.Key, m.Value)
		}
		return nil
	})
	if err != nil {
		a.lg.Error("record applied index", "index", index, "err", err)
	}
}

// Range serves a read from the local store.
func (a *Applier) Range(_ context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	resp, err := rangeKeys(storeReader{a.s}, r)
	return resp, ToGRPC(err)
}

// ReadTxn serves a txn that only reads, from the local store.
func (a *Applier) ReadTxn(_ context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	var resp *pb.TxnResponse
	var err error
	a.s.Read(func(rd mvcc.Reader) { resp, err = readTxn(rd, r) })
	return resp, ToGRPC(err)
}

// ToGRPC is the etcd error a client sees for err.
func ToGRPC(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mvcc.ErrCompacted):
		return rpctypes.ErrGRPCCompacted
	case errors.Is(err, mvcc.ErrFutureRev):
		return rpctypes.ErrGRPCFutureRev
	case errors.Is(err, lease.ErrNotFound):
		return rpctypes.ErrGRPCLeaseNotFound
	case errors.Is(err, lease.ErrExists):
		return rpctypes.ErrGRPCLeaseExist
	case errors.Is(err, lease.ErrTTLTooLarge):
		return rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	if e, ok := authErrors[err]; ok {
		return e
	}
	return err
}

// storeReader reads the store's current state, one lock per call.
type storeReader struct{ s *mvcc.Store }

func (r storeReader) Range(key, end []byte, o mvcc.RangeOptions) (*mvcc.RangeResult, error) {
	return r.s.Range(key, end, o)
}

func (r storeReader) Rev() int64 { return r.s.Rev() }

// authErrors are the auth store's errors as etcd's clients know them.
// ErrNoPasswordUser is not among them: etcd answers it as a plain error.
var authErrors = map[error]error{
	auth.ErrRootUserNotExist:     rpctypes.ErrGRPCRootUserNotExist,
	auth.ErrRootRoleNotExist:     rpctypes.ErrGRPCRootRoleNotExist,
	auth.ErrUserAlreadyExist:     rpctypes.ErrGRPCUserAlreadyExist,
	auth.ErrUserEmpty:            rpctypes.ErrGRPCUserEmpty,
	auth.ErrUserNotFound:         rpctypes.ErrGRPCUserNotFound,
	auth.ErrRoleAlreadyExist:     rpctypes.ErrGRPCRoleAlreadyExist,
	auth.ErrRoleNotFound:         rpctypes.ErrGRPCRoleNotFound,
	auth.ErrRoleEmpty:            rpctypes.ErrGRPCRoleEmpty,
	auth.ErrPermissionNotGiven:   rpctypes.ErrGRPCPermissionNotGiven,
	auth.ErrAuthFailed:           rpctypes.ErrGRPCAuthFailed,
	auth.ErrPermissionDenied:     rpctypes.ErrGRPCPermissionDenied,
	auth.ErrRoleNotGranted:       rpctypes.ErrGRPCRoleNotGranted,
	auth.ErrPermissionNotGranted: rpctypes.ErrGRPCPermissionNotGranted,
	auth.ErrAuthNotEnabled:       rpctypes.ErrGRPCAuthNotEnabled,
	auth.ErrAuthOldRevision:      rpctypes.ErrGRPCAuthOldRevision,
	auth.ErrInvalidAuthToken:     rpctypes.ErrGRPCInvalidAuthToken,
	auth.ErrInvalidAuthMgmt:      rpctypes.ErrGRPCInvalidAuthMgmt,
}
