package client

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Cmp is one txn condition, built with Compare over Value, Version,
// CreateRevision, ModRevision or LeaseValue.
type Cmp struct {
	target pb.Compare_CompareTarget
	key    []byte
	end    []byte
	result pb.Compare_CompareResult
	value  []byte
	num    int64
	// err is why Compare could not build the condition; Commit reports it.
	err error
}

// Value compares the key's value.
func Value(key string) Cmp { return Cmp{target: pb.Compare_VALUE, key: []byte(key)} }

// Version compares the key's version.
func Version(key string) Cmp { return Cmp{target: pb.Compare_VERSION, key: []byte(key)} }

// CreateRevision compares the key's create revision.
func CreateRevision(key string) Cmp { return Cmp{target: pb.Compare_CREATE, key: []byte(key)} }

// ModRevision compares the key's mod revision.
func ModRevision(key string) Cmp { return Cmp{target: pb.Compare_MOD, key: []byte(key)} }

// LeaseValue compares the key's lease ID.
func LeaseValue(key string) Cmp { return Cmp{target: pb.Compare_LEASE, key: []byte(key)} }

var results = map[string]pb.Compare_CompareResult{
	"=": pb.Compare_EQUAL, "!=": pb.Compare_NOT_EQUAL, ">": pb.Compare_GREATER, "<": pb.Compare_LESS,
}

// Compare finishes a Cmp: op is one of = != > <, v a string or []byte
// for Value and an integer for the others. A malformed Cmp is reported by
// Txn.Commit rather than here, so conditions compose as expressions.
func Compare(c Cmp, op string, v any) Cmp {
	r, ok := results[op]
	if !ok {
		c.err = fmt.Errorf("client: unknown compare operator %q on key %q", op, c.key)
		return c
	}
	c.result = r
	numeric := true
	switch x := v.(type) {
	case string:
		c.value, numeric = []byte(x), false
	case []byte:
		c.value, numeric = x, false
	case int:
		c.num = int64(x)
	case int64:
		c.num = x
	default:
		c.err = fmt.Errorf("client: compare on key %q: unsupported value type %T", c.key, v)
		return c
	}
	if numeric == (c.target == pb.Compare_VALUE) {
		c.err = fmt.Errorf("client: compare on key %q: %T value does not fit a %v compare", c.key, v, c.target)
	}
	return c
}

// WithRange makes the compare hold for every key in [key, end).
func (c Cmp) WithRange(end string) Cmp { c.end = []byte(end); return c }

// WithPrefix makes the compare hold for every key with the key as prefix.
func (c Cmp) WithPrefix() Cmp { c.end = prefixEnd(c.key); return c }

func (c Cmp) check() error { return c.err }

func (c Cmp) proto() *pb.Compare {
	p := &pb.Compare{Key: c.key, RangeEnd: c.end, Target: c.target, Result: c.result}
	switch c.target {
	case pb.Compare_VALUE:
		p.TargetUnion = &pb.Compare_Value{Value: c.value}
	case pb.Compare_VERSION:
		p.TargetUnion = &pb.Compare_Version{Version: c.num}
	case pb.Compare_CREATE:
		p.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: c.num}
	case pb.Compare_MOD:
		p.TargetUnion = &pb.Compare_ModRevision{ModRevision: c.num}
	case pb.Compare_LEASE:
		p.TargetUnion = &pb.Compare_Lease{Lease: c.num}
	}
	return p
}
