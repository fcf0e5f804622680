package client

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func TestRangeOptions(t *testing.T) {
	tests := []struct {
		name     string
		op       Op
		key, end string
		order    pb.RangeRequest_SortOrder
	}{
		{"single key", OpGet("a"), "a", "", SortNone},
		{"prefix", OpGet("ab", WithPrefix()), "ab", "ac", SortNone},
		{"prefix ending in 0xff", OpGet("a\xff", WithPrefix()), "a\xff", "b", SortNone},
		{"prefix of all 0xff", OpGet("\xff", WithPrefix()), "\xff", "\x00", SortNone},
		{"empty prefix means every key", OpGet("", WithPrefix()), "\x00", "\x00", SortNone},
		{"from key", OpGet("k", WithFromKey()), "k", "\x00", SortNone},
		{"range", OpGet("a", WithRange("c")), "a", "c", SortNone},
		{"key ascend is the natural order", OpGet("a", WithSort(SortByKey, SortAscend)), "a", "", SortNone},
		{"descend is sent", OpGet("a", WithSort(SortByKey, SortDescend)), "a", "", SortDescend},
	}
	for _, tt := range tests {
		r := tt.op.rangeRequest()
		if string(r.Key) != tt.key || string(r.RangeEnd) != tt.end || r.SortOrder != tt.order {
			t.Errorf("%s: key %q end %q order %v", tt.name, r.Key, r.RangeEnd, r.SortOrder)
		}
	}
}

func TestCompareBuilds(t *testing.T) {
	c := Compare(ModRevision("k"), ">", int64(3)).WithPrefix().proto()
	if c.Target != pb.Compare_MOD || c.Result != pb.Compare_GREATER || c.GetModRevision() != 3 || string(c.RangeEnd) != "l" {
		t.Fatalf("compare: %v", c)
	}
	if err := Compare(Value("k"), "~", "x").check(); err == nil {
		t.Fatal("unknown operator accepted")
	}
	op := OpTxn([]Cmp{Compare(Value("k"), "=", "v")}, []Op{OpPut("k", "w", WithPrevKV())}, []Op{OpGet("k")})
	r := op.txnRequest()
	if len(r.Compare) != 1 || !r.Success[0].GetRequestPut().PrevKv || r.Failure[0].GetRequestRange() == nil {
		t.Fatalf("txn: %v", r)
	}
}
