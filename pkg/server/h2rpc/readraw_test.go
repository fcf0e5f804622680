package h2rpc

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// trickleConn writes in pieces of a few bytes, so that frames reach the
// server split across many reads.
type trickleConn struct{ net.Conn }

func (c trickleConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 7)
		m, err := c.Conn.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// sniffingListener reads the first bytes of each connection ahead, as
// kvd's client listener does to tell gRPC from HTTP/1, and serves them
// again before the socket's, a byte per Read: the server's reader has then
// not taken them all when it starts reading the socket itself.
type sniffingListener struct {
	net.Listener
	n int
}

type sniffed struct {
	net.Conn
	r *bufio.Reader
}

func (l sniffingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	if _, err := r.Peek(l.n); err != nil {
		c.Close()
		return nil, err
	}
	return &sniffed{c, r}, nil
}

func (c *sniffed) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), 1)]) }
func (c *sniffed) NetConn() net.Conn          { return c.Conn }
func (c *sniffed) TakeReadAhead() []byte {
	b, _ := c.r.Peek(c.r.Buffered())
	b = append([]byte(nil), b...)
	_, _ = c.r.Discard(len(b))
	return b
}

// TestRawReads checks the reader that reads a TCP socket directly: frames
// split across reads, and bytes a listener read ahead of it (the preface
// and part of the frames after it), reach the handlers whole and in order.
func TestRawReads(t *testing.T) {
	windows := []grpc.DialOption{grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(4 << 20)}
	tests := []struct {
		name string
		lis  func(net.Listener) net.Listener
		dial []grpc.DialOption
	}{
		{name: "frames split across reads", dial: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return trickleConn{c}, nil
		})}},
		// With windows of its own, the client's first SETTINGS frame has a
		// payload and a WINDOW_UPDATE follows it: bytes that must not be
		// lost between the listener's buffer and the socket.
		{name: "preface sniffed by the listener", lis: func(l net.Listener) net.Listener { return sniffingListener{l, len(clientPreface)} }, dial: windows},
		{name: "preface and more read ahead", lis: func(l net.Listener) net.Listener { return sniffingListener{l, len(clientPreface) + frameHeaderLen} }, dial: windows},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if tt.lis != nil {
				lis = tt.lis(lis)
			}
			f := startOn(t, Options{MaxRecvMsgSize: 1 << 20}, nil, lis, tt.dial...)
			kv := pb.NewKVClient(f.conn)
			for _, key := range []string{"a", "big:100", "big:1" + strings.Repeat("\x00", 100<<10), "b"} {
				r, err := kv.Range(ctxT(t), &pb.RangeRequest{Key: []byte(key)})
				if err != nil {
					t.Fatalf("range %.10q: %v", key, err)
				}
				if len(r.Kvs) != 1 {
					t.Fatalf("range %.10q: %v", key, r)
				}
			}
			w, err := pb.NewWatchClient(f.conn).Watch(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := w.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte{byte('a' + i)}}}}); err != nil {
					t.Fatal(err)
				}
				if _, err := w.Recv(); err != nil {
					t.Fatalf("watch answer %d: %v", i, err)
				}
			}
			if err := w.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Recv(); err != io.EOF {
				t.Fatalf("after CloseSend: %v", err)
			}
		})
	}
}
