package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
)

func TestMinMax(t *testing.T) {
	tests := []struct {
		name   string
		ns     []int64
		lo, hi int64
	}{
		{"none", nil, 0, 0},
		{"one", []int64{7}, 7, 7},
		{"all equal", []int64{5, 5, 5}, 5, 5},
		{"first is neither", []int64{4, 9, 1, 6}, 1, 9},
		{"zero among them", []int64{3, 0, 2}, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if lo, hi := minMax(tt.ns); lo != tt.lo || hi != tt.hi {
				t.Fatalf("minMax(%v) = %d, %d; want %d, %d", tt.ns, lo, hi, tt.lo, tt.hi)
			}
		})
	}
}

// sumStatus reads real /proc files: this process's own, once and twice.
func TestSumStatusAddsUpProcesses(t *testing.T) {
	me := os.Getpid()
	for _, field := range []string{"RssAnon", "VmRSS", "VmHWM"} {
		one, err := sumStatus([]int{me}, field)
		if err != nil {
			t.Fatal(err)
		}
		if one <= 0 || one%1024 != 0 {
			t.Errorf("%s of this process: %d bytes, want a positive count of KiB", field, one)
		}
		two, err := sumStatus([]int{me, me}, field)
		if err != nil {
			t.Fatal(err)
		}
		// Memory may move between the reads; the sum stays near twice one.
		if two < one*3/2 || two > one*5/2 {
			t.Errorf("%s of this process counted twice: %d bytes, want about 2 x %d", field, two, one)
		}
	}
	if _, err := sumStatus([]int{me}, "NoSuchField"); err == nil {
		t.Error("sumStatus of a missing field: no error")
	}
}

// fakeKV serves n keys (8-byte big-endian numbers) with Range, honouring
// Key and Limit, and RangeStream in chunks of 7 keys.
type fakeKV struct {
	pb.UnimplementedKVServer
	keys [][]byte
}

func newFakeKV(n int) *fakeKV {
	f := &fakeKV{}
	for i := range n {
		f.keys = append(f.keys, makeKey(int64(i), 8))
	}
	return f
}

// from is the keys at or after r.Key, r.RangeEnd being every key.
func (f *fakeKV) from(r *pb.RangeRequest) []*mvccpb.KeyValue {
	var kvs []*mvccpb.KeyValue
	for _, k := range f.keys {
		if bytes.Compare(k, r.Key) >= 0 {
			kvs = append(kvs, &mvccpb.KeyValue{Key: k, Value: []byte("v")})
		}
	}
	return kvs
}

func (f *fakeKV) Range(_ context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	kvs := f.from(r)
	resp := &pb.RangeResponse{Count: int64(len(kvs))}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs, resp.More = kvs[:r.Limit], true
	}
	resp.Kvs = kvs
	return resp, nil
}

func (f *fakeKV) RangeStream(r *pb.RangeRequest, s pb.KV_RangeStreamServer) error {
	kvs := f.from(r)
	for len(kvs) > 0 {
		n := min(7, len(kvs))
		if err := s.Send(&pb.RangeStreamResponse{RangeResponse: &pb.RangeResponse{Kvs: kvs[:n]}}); err != nil {
			return err
		}
		kvs = kvs[n:]
	}
	return nil
}

// serve starts a gRPC server on 127.0.0.1 with kv registered (none if nil).
func serve(t *testing.T, kv pb.KVServer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	if kv != nil {
		pb.RegisterKVServer(srv, kv)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

// Every mode reads every key once, whatever the page or chunk boundaries.
func TestFullReadersReadEveryKey(t *testing.T) {
	ep := serve(t, newFakeKV(2500))
	cc, err := dial(ep, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	kv := pb.NewKVClient(cc)
	for _, pageSize := range []int64{1000, 2500, 3000, 1} {
		for mode, read := range fullReaders(pageSize) {
			n, err := read(context.Background(), kv)
			if err != nil || n != 2500 {
				t.Errorf("mode %s, page size %d: %d keys, %v; want 2500", mode, pageSize, n, err)
			}
		}
	}
}

func TestFullRangeCommand(t *testing.T) {
	ep := serve(t, newFakeKV(300))
	me := strconv.Itoa(os.Getpid())
	for _, mode := range []string{"range", "stream", "page"} {
		out, code := runKvbench(t, "--endpoints", ep, "--clients", "3", "--conns", "2", "--server-pids", me,
			"full-range", "--mode", mode, "--page-size", "100", "--settle", "0s")
		var anon, peak, took float64
		var keys, readers int
		line := out[strings.Index(out, "RESULT"):]
		if _, err := fmt.Sscanf(line, "RESULT anon_rss_mib=%f peak_rss_mib=%f ms=%f keys=%d readers=%d", &anon, &peak, &took, &keys, &readers); err != nil || code != 0 {
			t.Fatalf("mode %s: status %d, output %q: %v", mode, code, out, err)
		}
		if keys != 300 || readers != 3 || anon <= 0 || peak < anon {
			t.Errorf("mode %s: %q, want 300 keys, 3 readers, a peak at least the anonymous RSS", mode, line)
		}
	}
	if _, code := runKvbench(t, "--endpoints", ep, "--server-pids", me, "full-range", "--mode", "bulk"); code == 0 {
		t.Error("--mode bulk: status 0, want an error")
	}
	bare := serve(t, nil)
	if _, code := runKvbench(t, "--endpoints", bare, "--server-pids", me, "full-range", "--mode", "stream", "--settle", "0s"); code != exitUnsupported {
		t.Errorf("against a server without KV: status %d, want %d", code, exitUnsupported)
	}
}
