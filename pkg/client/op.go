package client

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

type opType int

const (
	opGet opType = iota + 1
	opPut
	opDelete
	opTxn
)

// Op is one KV operation, built by OpGet, OpPut, OpDelete or OpTxn and
// narrowed by OpOptions. Options that do not apply to an Op's kind (a
// limit on a put) are ignored.
type Op struct {
	t        opType
	key, end []byte
	val      []byte

	// range
	rev, limit                 int64
	sortTarget                 SortTarget
	sortOrder                  SortOrder
	serializable               bool
	keysOnly, countOnly        bool
	minModRev, maxModRev       int64
	minCreateRev, maxCreateRev int64

	// put and delete
	prevKV, ignoreValue, ignoreLease bool
	lease                            int64

	// watch
	filterPut, filterDelete       bool
	progressNotify, createdNotify bool
	fragment                      bool

	// txn
	cmps             []Cmp
	thenOps, elseOps []Op
}

// OpOption narrows an Op.
type OpOption func(*Op)

// OpGet reads key.
func OpGet(key string, opts ...OpOption) Op { return newOp(opGet, key, "", opts) }

// OpPut writes val under key.
func OpPut(key, val string, opts ...OpOption) Op { return newOp(opPut, key, val, opts) }

// OpDelete deletes key.
func OpDelete(key string, opts ...OpOption) Op { return newOp(opDelete, key, "", opts) }

// OpTxn nests a txn inside a txn.
func OpTxn(cmps []Cmp, thenOps, elseOps []Op) Op {
	return Op{t: opTxn, cmps: cmps, thenOps: thenOps, elseOps: elseOps}
}

func newOp(t opType, key, val string, opts []OpOption) Op {
	op := Op{t: t, key: []byte(key), val: []byte(val)}
	for _, o := range opts {
		o(&op)
	}
	return op
}

// prefixEnd is the first key after every key that starts with prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0} // every byte is 0xff: no end but "all keys from here"
}

// WithPrefix extends the op to every key starting with its key.
func WithPrefix() OpOption {
	return func(op *Op) {
		if len(op.key) == 0 {
			op.key, op.end = []byte{0}, []byte{0}
			return
		}
		op.end = prefixEnd(op.key)
	}
}

// WithRange extends the op to [key, end).
func WithRange(end string) OpOption { return func(op *Op) { op.end = []byte(end) } }

// WithFromKey extends the op to every key from its key on.
func WithFromKey() OpOption {
	return func(op *Op) {
		if len(op.key) == 0 {
			op.key = []byte{0}
		}
		op.end = []byte{0}
	}
}

// WithRev reads at revision rev.
func WithRev(rev int64) OpOption { return func(op *Op) { op.rev = rev } }

// WithLimit returns at most n keys.
func WithLimit(n int64) OpOption { return func(op *Op) { op.limit = n } }

// SortTarget and SortOrder name what WithSort sorts by.
type (
	SortTarget = pb.RangeRequest_SortTarget
	SortOrder  = pb.RangeRequest_SortOrder
)

// Sort targets and orders.
const (
	SortByKey            = pb.RangeRequest_KEY
	SortByVersion        = pb.RangeRequest_VERSION
	SortByCreateRevision = pb.RangeRequest_CREATE
	SortByModRevision    = pb.RangeRequest_MOD
	SortByValue          = pb.RangeRequest_VALUE
	SortNone             = pb.RangeRequest_NONE
	SortAscend           = pb.RangeRequest_ASCEND
	SortDescend          = pb.RangeRequest_DESCEND
)

// WithSort orders the result. Ascending by key is the server's natural
// order, so it is sent as no sort at all, as etcd's client does.
func WithSort(target SortTarget, order SortOrder) OpOption {
	return func(op *Op) {
		if target == SortByKey && order == SortAscend {
			order = SortNone
		}
		op.sortTarget, op.sortOrder = target, order
	}
}

// WithFirstCreate reads, of every key with the op's key as prefix, the
// one created first: the holder of a lock or an election kept there.
func WithFirstCreate() []OpOption { return withTop(SortByCreateRevision, SortAscend) }

// WithLastCreate reads, of every key with the op's key as prefix, the one
// created last.
func WithLastCreate() []OpOption { return withTop(SortByCreateRevision, SortDescend) }

func withTop(target SortTarget, order SortOrder) []OpOption {
	return []OpOption{WithPrefix(), WithSort(target, order), WithLimit(1)}
}

// WithSerializable reads from the local member without a read barrier.
func WithSerializable() OpOption { return func(op *Op) { op.serializable = true } }

// WithKeysOnly omits values.
func WithKeysOnly() OpOption { return func(op *Op) { op.keysOnly = true } }

// WithCountOnly returns only the count.
func WithCountOnly() OpOption { return func(op *Op) { op.countOnly = true } }

// WithMinModRev keeps keys modified at or after rev.
func WithMinModRev(rev int64) OpOption { return func(op *Op) { op.minModRev = rev } }

// WithMaxModRev keeps keys modified at or before rev.
func WithMaxModRev(rev int64) OpOption { return func(op *Op) { op.maxModRev = rev } }

// WithMinCreateRev keeps keys created at or after rev.
func WithMinCreateRev(rev int64) OpOption { return func(op *Op) { op.minCreateRev = rev } }

// WithMaxCreateRev keeps keys created at or before rev.
func WithMaxCreateRev(rev int64) OpOption { return func(op *Op) { op.maxCreateRev = rev } }

// WithPrevKV returns what a put or delete replaced.
func WithPrevKV() OpOption { return func(op *Op) { op.prevKV = true } }

// WithIgnoreValue keeps the key's current value.
func WithIgnoreValue() OpOption { return func(op *Op) { op.ignoreValue = true } }

// WithIgnoreLease keeps the key's current lease.
func WithIgnoreLease() OpOption { return func(op *Op) { op.ignoreLease = true } }

// WithLease attaches the key to a lease.
func WithLease(id int64) OpOption { return func(op *Op) { op.lease = id } }

func (op Op) rangeRequest() *pb.RangeRequest {
	return &pb.RangeRequest{
		Key: op.key, RangeEnd: op.end, Revision: op.rev, Limit: op.limit,
		SortOrder: op.sortOrder, SortTarget: op.sortTarget, Serializable: op.serializable,
		KeysOnly: op.keysOnly, CountOnly: op.countOnly,
		MinModRevision: op.minModRev, MaxModRevision: op.maxModRev,
		MinCreateRevision: op.minCreateRev, MaxCreateRevision: op.maxCreateRev,
	}
}

func (op Op) putRequest() *pb.PutRequest {
	return &pb.PutRequest{Key: op.key, Value: op.val, Lease: op.lease, PrevKv: op.prevKV, IgnoreValue: op.ignoreValue, IgnoreLease: op.ignoreLease}
}

func (op Op) deleteRequest() *pb.DeleteRangeRequest {
	return &pb.DeleteRangeRequest{Key: op.key, RangeEnd: op.end, PrevKv: op.prevKV}
}

func (op Op) txnRequest() *pb.TxnRequest {
	r := &pb.TxnRequest{}
	for _, c := range op.cmps {
		r.Compare = append(r.Compare, c.proto())
	}
	r.Success = requestOps(op.thenOps)
	r.Failure = requestOps(op.elseOps)
	return r
}

func requestOps(ops []Op) []*pb.RequestOp {
	out := make([]*pb.RequestOp, 0, len(ops))
	for _, op := range ops {
		out = append(out, op.requestOp())
	}
	return out
}

func (op Op) requestOp() *pb.RequestOp {
	switch op.t {
	case opPut:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: op.putRequest()}}
	case opDelete:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: op.deleteRequest()}}
	case opTxn:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: op.txnRequest()}}
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: op.rangeRequest()}}
}

// Watch-only options; other kinds of Op ignore them.

// WithFilterPut drops put events from a watch.
func WithFilterPut() OpOption { return func(op *Op) { op.filterPut = true } }

// WithFilterDelete drops delete events from a watch.
func WithFilterDelete() OpOption { return func(op *Op) { op.filterDelete = true } }

// WithProgressNotify asks the server to send a watch, now and then, an
// empty response carrying the current revision when nothing happened.
func WithProgressNotify() OpOption { return func(op *Op) { op.progressNotify = true } }

// WithCreatedNotify makes the first response on a watch channel the one
// that confirms the watch was created.
func WithCreatedNotify() OpOption { return func(op *Op) { op.createdNotify = true } }

// WithFragment lets the server split a large batch of events over
// several messages; the watcher joins them back into one response.
func WithFragment() OpOption { return func(op *Op) { op.fragment = true } }
