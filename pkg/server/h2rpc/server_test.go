package h2rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// kvEcho answers Range with what the call carried: the key back, the
// request's "token" metadata as the value, and a few behaviours chosen by
// the key.
type kvEcho struct {
	pb.UnimplementedKVServer
	started chan struct{} // a call that waits says it began
	ended   chan error    // and how its context ended
}

func (k *kvEcho) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	key := string(r.Key)
	switch {
	case key == "wait":
		k.started <- struct{}{}
		<-ctx.Done()
		k.ended <- ctx.Err()
		return nil, ctx.Err()
	case key == "slow":
		k.started <- struct{}{}
		time.Sleep(200 * time.Millisecond)
		return &pb.RangeResponse{Count: 1}, nil
	case strings.HasPrefix(key, "error:"):
		return nil, status.Error(codes.FailedPrecondition, strings.TrimPrefix(key, "error:"))
	case key == "details":
		s, _ := status.New(codes.InvalidArgument, "with details").WithDetails(&errdetails.ErrorInfo{Reason: "because"})
		return nil, s.Err()
	case key == "deadline":
		d, ok := ctx.Deadline()
		if !ok {
			return nil, status.Error(codes.Internal, "no deadline")
		}
		return &pb.RangeResponse{Count: int64(time.Until(d) / time.Millisecond)}, nil
	case key == "plain-error":
		return nil, errors.New("not a status")
	case strings.HasPrefix(key, "big:"):
		var n int
		fmt.Sscan(strings.TrimPrefix(key, "big:"), &n)
		return &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: r.Key, Value: bytes.Repeat([]byte("v"), n)}}}, nil
	}
	p, _ := peer.FromContext(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	resp := &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: r.Key, Value: []byte(strings.Join(md.Get("token"), ","))}}}
	if p != nil && p.Addr != nil {
		resp.Header = &pb.ResponseHeader{MemberId: uint64(len(p.Addr.String()))}
	}
	return resp, nil
}

// watchEcho answers each Watch request with its watch ID, after pause.
type watchEcho struct {
	pb.UnimplementedWatchServer
	pause time.Duration
}

func (w *watchEcho) Watch(ss pb.Watch_WatchServer) error {
	if err := ss.SendHeader(metadata.Pairs("hello", "there")); err != nil {
		return err
	}
	ss.SetTrailer(metadata.Pairs("bye", "now"))
	for {
		req, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		time.Sleep(w.pause)
		c := req.GetCreateRequest()
		if err := ss.Send(&pb.WatchResponse{WatchId: c.GetWatchId(), Created: true, CancelReason: string(c.GetKey()[:min(len(c.GetKey()), 8)])}); err != nil {
			return err
		}
	}
}

type fixture struct {
	target string
	srv    *Server
	conn   *grpc.ClientConn
	kv     *kvEcho
	done   chan error // Serve's return
}

func start(t *testing.T, opts Options, watch *watchEcho) *fixture {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startOn(t, opts, watch, lis)
}

// startOn is start serving on lis, with the client's extra dial options.
func startOn(t *testing.T, opts Options, watch *watchEcho, lis net.Listener, dial ...grpc.DialOption) *fixture {
	t.Helper()
	if opts.Codec == nil {
		opts.Codec = encoding.GetCodecV2(protocodec.Name)
	}
	f := &fixture{srv: NewServer(opts), kv: &kvEcho{started: make(chan struct{}, 100), ended: make(chan error, 100)}, done: make(chan error, 1)}
	pb.RegisterKVServer(f.srv, f.kv)
	if watch == nil {
		watch = &watchEcho{}
	}
	pb.RegisterWatchServer(f.srv, watch)
	f.target = lis.Addr().String()
	go func() { f.done <- f.srv.Serve(lis) }()
	var err error
	f.conn, err = grpc.NewClient(lis.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))}, dial...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.conn.Close()
		f.srv.Stop()
	})
	return f
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestUnaryCalls(t *testing.T) {
	f := start(t, Options{MaxRecvMsgSize: 1 << 20}, nil)
	kv := pb.NewKVClient(f.conn)
	tests := []struct {
		name     string
		key      string
		md       []string
		wantCode codes.Code
		wantMsg  string
		check    func(t *testing.T, r *pb.RangeResponse)
	}{
		{name: "metadata and peer reach the handler", key: "a", md: []string{"token", "t1", "other-bin", "\x00\x01"},
			check: func(t *testing.T, r *pb.RangeResponse) {
				if string(r.Kvs[0].Value) != "t1" || r.Header.GetMemberId() == 0 {
					t.Fatalf("got %v", r)
				}
			}},
		{name: "the client's deadline is the handler's", key: "deadline",
			check: func(t *testing.T, r *pb.RangeResponse) {
				if r.Count < 5000 || r.Count > 10000 { // ctxT gives 10 s
					t.Fatalf("handler had %d ms left", r.Count)
				}
			}},
		{name: "status error", key: "error:no such thing", wantCode: codes.FailedPrecondition, wantMsg: "no such thing"},
		{name: "message needing percent-encoding", key: "error:100% sure\nnewline é", wantCode: codes.FailedPrecondition, wantMsg: "100% sure\nnewline é"},
		{name: "plain error is Unknown", key: "plain-error", wantCode: codes.Unknown, wantMsg: "not a status"},
		{name: "details survive", key: "details", wantCode: codes.InvalidArgument, wantMsg: "with details"},
		{name: "answer larger than the client's window", key: "big:3000000",
			check: func(t *testing.T, r *pb.RangeResponse) {
				if len(r.Kvs[0].Value) != 3000000 {
					t.Fatalf("got %d bytes", len(r.Kvs[0].Value))
				}
			}},
		{name: "request over the limit", key: strings.Repeat("k", 1<<20), wantCode: codes.ResourceExhausted, wantMsg: "grpc: received message larger than max"},
		{name: "request just under the limit", key: "big:1" + strings.Repeat("\x00", (1<<20)-20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			if tt.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, tt.md...)
			}
			r, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte(tt.key)})
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("code %v (%v), want %v", got, err, tt.wantCode)
			}
			if err != nil {
				s := status.Convert(err)
				if !strings.HasPrefix(s.Message(), tt.wantMsg) {
					t.Fatalf("message %q, want %q", s.Message(), tt.wantMsg)
				}
				if tt.key == "details" && len(s.Details()) != 1 {
					t.Fatalf("details %v", s.Details())
				}
				return
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestUnknownMethod(t *testing.T) {
	f := start(t, Options{}, nil)
	err := f.conn.Invoke(ctxT(t), "/etcdserverpb.KV/Nope", &pb.RangeRequest{}, &pb.RangeResponse{})
	if s := status.Convert(err); s.Code() != codes.Unimplemented || s.Message() != "unknown method Nope for service etcdserverpb.KV" {
		t.Fatalf("got %v", err)
	}
	// The connection still serves.
	if _, err := pb.NewKVClient(f.conn).Range(ctxT(t), &pb.RangeRequest{Key: []byte("a")}); err != nil {
		t.Fatal(err)
	}
}

// A request that is not gRPC is refused as grpc-go refuses it: HTTP 415.
func TestNotGRPC(t *testing.T) {
	f := start(t, Options{}, nil)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true) // prior knowledge, as gRPC clients speak
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Post("http://"+f.target+"/etcdserverpb.KV/Range", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnsupportedMediaType || resp.Header.Get("grpc-status") != "13" {
		t.Fatalf("status %d, headers %v, trailers %v", resp.StatusCode, resp.Header, resp.Trailer)
	}
	if got := resp.Header.Get("grpc-message"); got != `transport: received unexpected content-type "application/json"` {
		t.Fatalf("grpc-message %q", got)
	}
}

func TestCallEnds(t *testing.T) {
	tests := []struct {
		name    string
		call    func(kv pb.KVClient) error
		wantCtx []error
	}{
		// The client resets the stream when its deadline passes, and that
		// may reach the server before the server's own timer fires.
		{name: "deadline", wantCtx: []error{context.DeadlineExceeded, context.Canceled}, call: func(kv pb.KVClient) error {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("wait")})
			return err
		}},
		{name: "client cancels", wantCtx: []error{context.Canceled}, call: func(kv pb.KVClient) error {
			ctx, cancel := context.WithCancel(context.Background())
			go func() { time.Sleep(100 * time.Millisecond); cancel() }()
			_, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("wait")})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, Options{}, nil)
			if err := tt.call(pb.NewKVClient(f.conn)); err == nil {
				t.Fatal("call succeeded")
			}
			select {
			case err := <-f.kv.ended:
				if !slices.ContainsFunc(tt.wantCtx, func(e error) bool { return errors.Is(err, e) }) {
					t.Fatalf("handler's context ended with %v, want %v", err, tt.wantCtx)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("handler's context never ended")
			}
		})
	}
}

func TestBidiStream(t *testing.T) {
	// Requests far larger in sum than the stream's window, handled slowly,
	// must all arrive: the window is given back as the handler reads.
	f := start(t, Options{MaxRecvMsgSize: 64 << 10}, &watchEcho{pause: time.Millisecond})
	ws, err := pb.NewWatchClient(f.conn).Watch(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	big := bytes.Repeat([]byte("k"), 60<<10)
	go func() {
		for i := range n {
			_ = ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: big, WatchId: int64(i)}}})
		}
		_ = ws.CloseSend()
	}()
	hdr, err := ws.Header()
	if err != nil || hdr.Get("hello")[0] != "there" {
		t.Fatalf("header %v, %v", hdr, err)
	}
	for i := range n {
		r, err := ws.Recv()
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if r.WatchId != int64(i) || r.CancelReason != "kkkkkkkk" {
			t.Fatalf("recv %d: got %v", i, r)
		}
	}
	if _, err := ws.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last: %v", err)
	}
	if tr := ws.Trailer(); tr.Get("bye")[0] != "now" {
		t.Fatalf("trailer %v", tr)
	}
}

func TestConcurrentCalls(t *testing.T) {
	f := start(t, Options{Workers: 4}, nil)
	kv := pb.NewKVClient(f.conn)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			for i := range 50 {
				key := fmt.Sprintf("k%d-%d", g, i)
				if i%10 == 0 {
					key = fmt.Sprintf("big:%d", 100000+g)
				}
				r, err := kv.Range(ctxT(t), &pb.RangeRequest{Key: []byte(key)})
				if err != nil {
					errs <- err
					return
				}
				if string(r.Kvs[0].Key) != key {
					errs <- fmt.Errorf("asked %q, got %q", key, r.Kvs[0].Key)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestGracefulStop(t *testing.T) {
	f := start(t, Options{}, nil)
	kv := pb.NewKVClient(f.conn)
	if _, err := kv.Range(ctxT(t), &pb.RangeRequest{Key: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() {
		r, err := kv.Range(ctxT(t), &pb.RangeRequest{Key: []byte("slow")})
		if err == nil && r.Count != 1 {
			err = fmt.Errorf("got %v", r)
		}
		slow <- err
	}()
	<-f.kv.started
	stopped := make(chan struct{})
	go func() { f.srv.GracefulStop(); close(stopped) }()
	if err := <-slow; err != nil {
		t.Fatalf("call in flight: %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("GracefulStop did not return")
	}
	if err := <-f.done; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("a")}); err == nil {
		t.Fatal("a call after GracefulStop succeeded")
	}
}

func TestStopCancelsCalls(t *testing.T) {
	f := start(t, Options{}, nil)
	go func() {
		_, _ = pb.NewKVClient(f.conn).Range(context.Background(), &pb.RangeRequest{Key: []byte("wait")})
	}()
	<-f.kv.started
	f.srv.Stop()
	select {
	case err := <-f.kv.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler's context ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop left the call running")
	}
}

func TestInterceptorsRunInOrder(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	note := func(s string) {
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	}
	unary := func(name string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			note(name + " " + info.FullMethod)
			return h(ctx, req)
		}
	}
	stream := func(name string) grpc.StreamServerInterceptor {
		return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			note(fmt.Sprint(name, " ", info.FullMethod, " ", info.IsClientStream, info.IsServerStream))
			return h(srv, ss)
		}
	}
	f := start(t, Options{
		UnaryInterceptors:  []grpc.UnaryServerInterceptor{unary("u1"), unary("u2"), unary("u3")},
		StreamInterceptors: []grpc.StreamServerInterceptor{stream("s1"), stream("s2")},
	}, nil)
	if _, err := pb.NewKVClient(f.conn).Range(ctxT(t), &pb.RangeRequest{Key: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	ws, err := pb.NewWatchClient(f.conn).Watch(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = ws.CloseSend()
	if _, err := ws.Recv(); !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	want := []string{"u1 /etcdserverpb.KV/Range", "u2 /etcdserverpb.KV/Range", "u3 /etcdserverpb.KV/Range",
		"s1 /etcdserverpb.Watch/Watch true true", "s2 /etcdserverpb.Watch/Watch true true"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("saw %q, want %q", seen, want)
	}
	if info := f.srv.GetServiceInfo()["etcdserverpb.Watch"]; len(info.Methods) != 1 || !info.Methods[0].IsServerStream {
		t.Fatalf("service info %v", info)
	}
}
