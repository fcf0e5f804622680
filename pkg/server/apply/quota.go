package apply

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Space quota, as etcd's --quota-backend-bytes: a member refuses a request
// that may add data when the database file plus the request's estimated
// cost would reach the quota, and raises the NOSPACE alarm.
const (
	// DefaultQuotaBytes is the quota when none is given (0): 2 GiB.
	DefaultQuotaBytes = int64(2 << 30)
	// MaxQuotaBytes is the largest quota etcd recommends; a bigger one is
	// accepted with a warning.
	MaxQuotaBytes = int64(8 << 30)

	// The cost estimates etcd uses: what a key's metadata and a lease
	// take in the database beyond their bytes.
	keyOverhead   = 256
	leaseOverhead = 64
)

// Quota judges requests against a database size limit. The zero value,
// and a negative limit, allow everything.
type Quota struct {
	limit int64
}

// NewQuota returns the quota for the --quota-backend-bytes value: 0 means
// the default, a negative value none at all.
func NewQuota(bytes int64) Quota {
	if bytes == 0 {
		bytes = DefaultQuotaBytes
	}
	return Quota{limit: bytes}
}

// Limit is the quota in bytes; 0 or less means none.
func (q Quota) Limit() int64 { return q.limit }

// Available says whether r fits in a database of size() bytes. size is
// asked only for a request that adds something under a quota, as it
// takes the database's lock.
func (q Quota) Available(size func() int64, r any) bool {
	if q.limit <= 0 {
		return true
	}
	c := Cost(r)
	return c == 0 || size()+int64(c) < q.limit
}

// Cost estimates the bytes r may add to the database: a put's key and
// value with their metadata, a lease grant's record, and for a txn the
// dearer of its two branches, nested txns included. Other requests cost
// nothing.
func Cost(r any) int {
	switch r := r.(type) {
	case *pb.PutRequest:
		return keyOverhead + len(r.Key) + len(r.Value)
	case *pb.LeaseGrantRequest:
		return leaseOverhead
	case *pb.TxnRequest:
		return max(opsCost(r.Success), opsCost(r.Failure))
	}
	return 0
}

func opsCost(ops []*pb.RequestOp) int {
	n := 0
	for _, op := range ops {
		if p := op.GetRequestPut(); p != nil {
			n += Cost(p)
		} else if t := op.GetRequestTxn(); t != nil {
			n += Cost(t)
		}
	}
	return n
}
