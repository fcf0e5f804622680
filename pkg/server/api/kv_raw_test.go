package api

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
)

// decodingKV serves ranges the way the member did before the raw path:
// through the applier, which decodes every record.
type decodingKV struct {
	KV // writes are not used here
	a  *apply.Applier
}

func (k decodingKV) ReadBarrier(context.Context) error { return nil }

func (k decodingKV) LocalRange(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	return k.a.Range(ctx, r)
}

// rawKV adds the raw path, and counts its use.
type rawKV struct {
	decodingKV
	s     *mvcc.Store
	calls *atomic.Int64
}

func (k rawKV) LocalRangeRaw(_ context.Context, r *pb.RangeRequest, lim RawLimit, fn func(rev, count int64, vals [][]byte) error) error {
	defer k.calls.Add(1) // after the read: a test may wait for it to be done
	return apply.ToGRPC(k.s.RangeRaw(r.Key, r.RangeEnd, mvcc.RangeOptions{Limit: lim.Keys, Rev: r.Revision, Paged: lim.Paged}, fn))
}

type fixedHeader struct{ s *mvcc.Store }

func (fixedHeader) ClusterID() uint64 { return 0xc1 }
func (fixedHeader) MemberID() uint64  { return 0x3e3 }
func (fixedHeader) Term() uint64      { return 5 }
func (h fixedHeader) Rev() int64      { return h.s.Rev() }

// rawRecord writes a record straight into the key bucket, at a revision
// above every other, as some other writer might have stored it.
func rawRecord(t *testing.T, be *backend.Backend, main int64, rec []byte) {
	t.Helper()
	k := make([]byte, 17)
	binary.BigEndian.PutUint64(k, uint64(main))
	k[8] = '_'
	if err := be.Write(func(tx backend.WriteTx) error { return tx.Put(backend.Key, k, rec) }); err != nil {
		t.Fatal(err)
	}
}

// openRangeStore fills a store with keys of several shapes: updated and
// deleted ones, leased ones, an empty value, and records not in the form
// proto.Marshal writes (fields out of order, an explicit zero, an unknown
// field), which the raw path must re-encode as the decoding path does.
func openRangeStore(t *testing.T) (*mvcc.Store, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	s, be := openStore(t, path)
	var index uint64
	write := func(fn func(*mvcc.TxnWrite)) {
		index++
		if err := s.Write(index, 1, func(tx *mvcc.TxnWrite) error { fn(tx); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		write(func(tx *mvcc.TxnWrite) {
			tx.Put(fmt.Appendf(nil, "k%02d", i), bytes.Repeat([]byte{byte('a' + i%26)}, i*7), int64(i%3)*1000)
		})
	}
	mid := s.Rev()
	write(func(tx *mvcc.TxnWrite) { tx.Put([]byte("k05"), []byte("again"), 0) })
	write(func(tx *mvcc.TxnWrite) { tx.DeleteRange([]byte("k07"), []byte("k09")) })
	write(func(tx *mvcc.TxnWrite) { tx.Put([]byte("k07"), []byte("back"), 77) })
	s.Close()
	rev := s.Rev()
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	var reversed, zero, unknown []byte
	reversed = protowire.AppendVarint(tag(reversed, 3, protowire.VarintType), uint64(rev+1)) // mod before key
	reversed = protowire.AppendBytes(tag(reversed, 1, protowire.BytesType), []byte("x1"))
	reversed = protowire.AppendVarint(tag(reversed, 2, protowire.VarintType), uint64(rev+1))
	reversed = protowire.AppendBytes(tag(reversed, 5, protowire.BytesType), []byte("reversed"))
	zero = protowire.AppendBytes(tag(zero, 1, protowire.BytesType), []byte("x2"))
	zero = protowire.AppendVarint(tag(zero, 2, protowire.VarintType), uint64(rev+2))
	zero = protowire.AppendVarint(tag(zero, 3, protowire.VarintType), uint64(rev+2))
	zero = protowire.AppendVarint(tag(zero, 4, protowire.VarintType), 1)
	zero = protowire.AppendBytes(tag(zero, 5, protowire.BytesType), []byte("zero lease"))
	zero = protowire.AppendVarint(tag(zero, 6, protowire.VarintType), 0)
	unknown = protowire.AppendBytes(tag(unknown, 1, protowire.BytesType), []byte("x3"))
	unknown = protowire.AppendVarint(tag(unknown, 2, protowire.VarintType), uint64(rev+3))
	unknown = protowire.AppendVarint(tag(unknown, 3, protowire.VarintType), uint64(rev+3))
	unknown = protowire.AppendBytes(tag(unknown, 5, protowire.BytesType), []byte("unknown"))
	unknown = protowire.AppendBytes(tag(unknown, 9, protowire.BytesType), []byte("later field"))
	for i, rec := range [][]byte{reversed, zero, unknown} {
		rawRecord(t, be, rev+1+int64(i), rec)
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	s, be = openStore(t, path)
	t.Cleanup(func() { s.Close(); be.Close() })
	return s, mid
}

// openStore opens the database at path and the store over it; the caller
// closes both.
func openStore(t *testing.T, path string) (*mvcc.Store, *backend.Backend) {
	t.Helper()
	be, err := backend.Open(backend.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s, err := mvcc.New(be, nil)
	if err != nil {
		be.Close()
		t.Fatal(err)
	}
	return s, be
}

func rangeServices(t *testing.T) (old, raw *kvService, calls *atomic.Int64, s *mvcc.Store, mid int64) {
	s, mid = openRangeStore(t)
	dec := decodingKV{a: apply.New(s, nil, nil, nil)}
	calls = new(atomic.Int64)
	old = &kvService{kv: dec, hdr: fixedHeader{s}, chunkBytes: 150}
	raw = &kvService{kv: rawKV{decodingKV: dec, s: s, calls: calls}, hdr: fixedHeader{s}, chunkBytes: 150}
	return old, raw, calls, s, mid
}

// rangeCases are the requests both paths answer; covered says whether the
// raw path serves it.
func rangeCases(mid int64) []struct {
	name    string
	r       *pb.RangeRequest
	covered bool
} {
	all := []byte("\x00")
	return []struct {
		name    string
		r       *pb.RangeRequest
		covered bool
	}{
		{"one key", &pb.RangeRequest{Key: []byte("k05")}, true},
		{"missing key", &pb.RangeRequest{Key: []byte("nope")}, true},
		{"deleted key", &pb.RangeRequest{Key: []byte("k08")}, true},
		{"empty value", &pb.RangeRequest{Key: []byte("k00")}, true},
		{"every key", &pb.RangeRequest{Key: all, RangeEnd: all}, true},
		{"prefix", &pb.RangeRequest{Key: []byte("k1"), RangeEnd: []byte("k2")}, true},
		{"limit", &pb.RangeRequest{Key: all, RangeEnd: all, Limit: 3}, true},
		{"limit across chunks", &pb.RangeRequest{Key: all, RangeEnd: all, Limit: 15}, true},
		{"limit equal to count", &pb.RangeRequest{Key: []byte("k1"), RangeEnd: []byte("k2"), Limit: 10}, true},
		{"limit above count", &pb.RangeRequest{Key: []byte("k1"), RangeEnd: []byte("k2"), Limit: 11}, true},
		{"keys only", &pb.RangeRequest{Key: all, RangeEnd: all, KeysOnly: true}, true},
		{"keys only limit", &pb.RangeRequest{Key: []byte("k3"), RangeEnd: all, KeysOnly: true, Limit: 4}, true},
		{"old revision", &pb.RangeRequest{Key: all, RangeEnd: all, Revision: mid}, true},
		{"old revision limit", &pb.RangeRequest{Key: []byte("k05"), RangeEnd: []byte("k09"), Revision: mid, Limit: 2}, true},
		{"non-canonical records", &pb.RangeRequest{Key: []byte("x"), RangeEnd: []byte("y")}, true},
		{"non-canonical keys only", &pb.RangeRequest{Key: []byte("x"), RangeEnd: []byte("y"), KeysOnly: true}, true},
		{"key ascending", &pb.RangeRequest{Key: all, RangeEnd: all, SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_KEY, Limit: 5}, true},
		{"serializable", &pb.RangeRequest{Key: []byte("k2"), RangeEnd: []byte("k3"), Serializable: true}, true},
		{"future revision", &pb.RangeRequest{Key: all, RangeEnd: all, Revision: 1 << 40}, true},
		{"count only", &pb.RangeRequest{Key: all, RangeEnd: all, CountOnly: true}, false},
		{"key descending", &pb.RangeRequest{Key: all, RangeEnd: all, SortOrder: pb.RangeRequest_DESCEND, Limit: 5}, false},
		{"by mod revision", &pb.RangeRequest{Key: all, RangeEnd: all, SortTarget: pb.RangeRequest_MOD}, false},
		{"by value descending", &pb.RangeRequest{Key: all, RangeEnd: all, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND}, false},
		{"min mod revision", &pb.RangeRequest{Key: all, RangeEnd: all, MinModRevision: mid}, false},
		{"max create revision", &pb.RangeRequest{Key: all, RangeEnd: all, MaxCreateRevision: 10, Limit: 2}, false},
	}
}

// TestRangeRawMatchesDecoding checks that the raw path's answers are, byte
// for byte, what the decoding path's answers marshal to, also once they
// go through the server's codec, and that the covered requests do take it.
func TestRangeRawMatchesDecoding(t *testing.T) {
	old, raw, calls, _, mid := rangeServices(t)
	ctx := context.Background()
	for _, c := range rangeCases(mid) {
		t.Run(c.name, func(t *testing.T) {
			calls.Store(0)
			want, werr := old.Range(ctx, proto.Clone(c.r).(*pb.RangeRequest))
			got, gerr := raw.Range(ctx, proto.Clone(c.r).(*pb.RangeRequest))
			if (calls.Load() > 0) != c.covered {
				t.Fatalf("raw path used %d times, want it used: %v", calls.Load(), c.covered)
			}
			if werr != nil || gerr != nil {
				if werr == nil || gerr == nil || werr.Error() != gerr.Error() {
					t.Fatalf("errors differ: raw %v, decoding %v", gerr, werr)
				}
				return
			}
			wb, err := proto.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			gb, err := serverCodec.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gb.Materialize(), wb) {
				t.Fatalf("answers differ:\nraw      %x\ndecoding %x", gb.Materialize(), wb)
			}
			if pm, _ := proto.Marshal(got); !bytes.Equal(pm, wb) {
				t.Fatalf("proto.Marshal of the raw answer differs")
			}
			if c.covered && len(want.Kvs) > 0 && proto.Size(want) > 0 && !proto.Equal(want, decoded(t, wb)) {
				t.Fatal("answer does not decode to itself")
			}
		})
	}
}

func decoded(t *testing.T, b []byte) *pb.RangeResponse {
	t.Helper()
	r := new(pb.RangeResponse)
	if err := proto.Unmarshal(b, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// chunkRecorder is a RangeStream's server side that keeps a copy of each
// message sent, marshalled, and then frees the buffers, as gRPC does once
// it has written them: the stream may then reuse them.
type chunkRecorder struct {
	grpc.ServerStream
	msgs [][]byte
}

func (c *chunkRecorder) Context() context.Context { return context.Background() }

func (c *chunkRecorder) Send(m *pb.RangeStreamResponse) error {
	b, err := serverCodec.Marshal(m)
	if err != nil {
		return err
	}
	c.msgs = append(c.msgs, b.Materialize())
	b.Free()
	return nil
}

// TestRangeStreamRawMatchesDecoding checks that a streamed range sends the
// same chunks, byte for byte, on both paths (chunks of about 150 bytes
// here, so most answers take several).
func TestRangeStreamRawMatchesDecoding(t *testing.T) {
	old, raw, calls, _, mid := rangeServices(t)
	for _, c := range rangeCases(mid) {
		if c.r.SortOrder == pb.RangeRequest_DESCEND || c.r.SortTarget != pb.RangeRequest_KEY ||
			c.r.MinModRevision != 0 || c.r.MaxCreateRevision != 0 {
			continue // RangeStream refuses these
		}
		t.Run(c.name, func(t *testing.T) {
			calls.Store(0)
			var want, got chunkRecorder
			werr := old.RangeStream(proto.Clone(c.r).(*pb.RangeRequest), &want)
			gerr := raw.RangeStream(proto.Clone(c.r).(*pb.RangeRequest), &got)
			if (calls.Load() > 0) != c.covered {
				t.Fatalf("raw path used %d times, want it used: %v", calls.Load(), c.covered)
			}
			if !errors.Is(gerr, werr) && (gerr == nil || werr == nil || gerr.Error() != werr.Error()) {
				t.Fatalf("errors differ: raw %v, decoding %v", gerr, werr)
			}
			if len(got.msgs) != len(want.msgs) {
				t.Fatalf("raw path sent %d chunks, decoding path %d", len(got.msgs), len(want.msgs))
			}
			for i := range want.msgs {
				if !bytes.Equal(got.msgs[i], want.msgs[i]) {
					t.Fatalf("chunk %d differs:\nraw      %x\ndecoding %x", i, got.msgs[i], want.msgs[i])
				}
			}
		})
	}
}

// TestRangeRawCompacted checks that a revision below the compaction point
// gets the same error on both paths.
func TestRangeRawCompacted(t *testing.T) {
	old, raw, _, s, mid := rangeServices(t)
	var done <-chan struct{}
	if err := s.Write(1000, 1, func(tx *mvcc.TxnWrite) (err error) { done, err = tx.Compact(mid + 1); return err }); err != nil {
		t.Fatal(err)
	}
	<-done
	r := &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), Revision: mid}
	_, werr := old.Range(context.Background(), r)
	_, gerr := raw.Range(context.Background(), r)
	if werr == nil || gerr == nil || werr.Error() != gerr.Error() {
		t.Fatalf("errors differ: raw %v, decoding %v", gerr, werr)
	}
}
