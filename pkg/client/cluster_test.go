package client

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvd-io/kvd/tests/framework"
)

func TestCheckPeerURLs(t *testing.T) {
	for _, tt := range []struct {
		urls []string
		want string // "" for none
	}{
		{[]string{"http://127.0.0.1:2380"}, ""},
		{[]string{"https://h:1", " http://[::1]:2 ", "unix://sock", "unixs:///tmp/x"}, ""},
		{nil, "no valid URLs given"},
		{[]string{"foo"}, "URL scheme must be http, https, unix, or unixs: foo"},
		{[]string{"http://h:1", "ftp://h:2"}, "URL scheme must be http, https, unix, or unixs: ftp://h:2"},
		{[]string{"http://h"}, `URL address does not have the form "host:port": http://h`},
		{[]string{"http://h:1/p"}, "URL must not contain a path: http://h:1/p"},
		{[]string{"http://[::1"}, `parse "http://[::1": missing ']' in host`},
	} {
		err := checkPeerURLs(tt.urls)
		if got := ""; err != nil {
			got = err.Error()
			if got != tt.want {
				t.Errorf("checkPeerURLs(%q) = %q, want %q", tt.urls, got, tt.want)
			}
		} else if tt.want != "" {
			t.Errorf("checkPeerURLs(%q) = nil, want %q", tt.urls, tt.want)
		}
	}
}

// failingCluster answers every membership change with Unavailable and
// counts the requests.
type failingCluster struct {
	pb.UnimplementedClusterServer
	pb.UnimplementedMaintenanceServer
	calls atomic.Int32
}

func (f *failingCluster) fail() error {
	f.calls.Add(1)
	return status.Error(codes.Unavailable, "try elsewhere")
}

func (f *failingCluster) MemberAdd(context.Context, *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return nil, f.fail()
}

func (f *failingCluster) MemberRemove(context.Context, *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	return nil, f.fail()
}

func (f *failingCluster) MemberUpdate(context.Context, *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	return nil, f.fail()
}

func (f *failingCluster) MemberPromote(context.Context, *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	return nil, f.fail()
}

func (f *failingCluster) MoveLeader(context.Context, *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	return nil, f.fail()
}

// TestMemberChangesNotRetried checks that a change that failed with
// Unavailable, which the client repeats for reads, is sent only once:
// it may have been applied.
func TestMemberChangesNotRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	fake := &failingCluster{}
	pb.RegisterClusterServer(srv, fake)
	pb.RegisterMaintenanceServer(srv, fake)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	c := newTestClient(t, Config{Endpoints: []string{l.Addr().String()}})
	urls := []string{"http://127.0.0.1:1"}
	for name, call := range map[string]func(context.Context) error{
		"MemberAdd":          func(ctx context.Context) error { _, err := c.MemberAdd(ctx, urls); return err },
		"MemberAddAsLearner": func(ctx context.Context) error { _, err := c.MemberAddAsLearner(ctx, urls); return err },
		"MemberRemove":       func(ctx context.Context) error { _, err := c.MemberRemove(ctx, 1); return err },
		"MemberUpdate":       func(ctx context.Context) error { _, err := c.MemberUpdate(ctx, 1, urls); return err },
		"MemberPromote":      func(ctx context.Context) error { _, err := c.MemberPromote(ctx, 1); return err },
		"MoveLeader":         func(ctx context.Context) error { _, err := c.MoveLeader(ctx, 1); return err },
	} {
		fake.calls.Store(0)
		err := call(testCtx(t))
		if status.Code(err) != codes.Unavailable || fake.calls.Load() != 1 {
			t.Errorf("%s: error %v after %d calls, want Unavailable after 1", name, err, fake.calls.Load())
		}
	}
}

// TestMembershipAgainstEtcd changes a real three-member etcd's
// membership and moves its leader.
func TestMembershipAgainstEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member etcd; skipped with -short")
	}
	etcd := framework.RequireBin(t, framework.EtcdBin())
	// Without the strict check the members need not have been connected
	// for five seconds before the first change.
	ms := framework.StartCluster(t, etcd, 3, "--strict-reconfig-check=false")
	c := newTestClient(t, Config{Endpoints: []string{ms[0].Endpoint, ms[1].Endpoint, ms[2].Endpoint}})
	ctx := testCtx(t)

	if _, err := c.MemberAdd(ctx, []string{"http://h"}); err == nil || err.Error() != `URL address does not have the form "host:port": http://h` {
		t.Fatalf("MemberAdd with a bad URL: %v", err)
	}
	add, err := c.MemberAddAsLearner(ctx, []string{"http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	id := add.Member.ID
	if !add.Member.IsLearner || len(add.Members) != 4 {
		t.Fatalf("MemberAddAsLearner: %+v", add)
	}
	if _, err := c.MemberPromote(ctx, id); !errors.Is(err, errLearnerNotReady) {
		t.Fatalf("promoting a learner that never started: %v, want %v", err, errLearnerNotReady)
	}
	upd, err := c.MemberUpdate(ctx, id, []string{"http://127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range upd.Members {
		found = found || (m.ID == id && len(m.PeerURLs) == 1 && m.PeerURLs[0] == "http://127.0.0.1:2")
	}
	if !found {
		t.Fatalf("MemberUpdate: %+v", upd)
	}
	rm, err := c.MemberRemove(ctx, id)
	if err != nil || len(rm.Members) != 3 {
		t.Fatalf("MemberRemove: %+v, %v", rm, err)
	}
	if _, err := c.MemberRemove(ctx, id); !errors.Is(err, rpctypes.ErrMemberNotFound) {
		t.Fatalf("removing it again: %v, want %v", err, rpctypes.ErrMemberNotFound)
	}
	add, err = c.MemberAdd(ctx, []string{"http://127.0.0.1:3"})
	if err != nil || add.Member.IsLearner {
		t.Fatalf("MemberAdd: %+v, %v", add, err)
	}
	if _, err := c.MemberRemove(ctx, add.Member.ID); err != nil {
		t.Fatal(err)
	}

	// MoveLeader must reach the leader: a follower refuses.
	var leader, follower *framework.Member
	var followerID uint64
	for _, m := range ms {
		st, err := c.Status(ctx, m.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		if st.Header.MemberId == st.Leader {
			leader = m
		} else {
			follower, followerID = m, st.Header.MemberId
		}
	}
	onFollower := newTestClient(t, Config{Endpoints: []string{follower.Endpoint}})
	if _, err := onFollower.MoveLeader(ctx, followerID); !errors.Is(err, rpctypes.ErrNotLeader) {
		t.Fatalf("MoveLeader on a follower: %v, want %v", err, rpctypes.ErrNotLeader)
	}
	onLeader := newTestClient(t, Config{Endpoints: []string{leader.Endpoint}})
	if _, err := onLeader.MoveLeader(ctx, followerID); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx, follower.Endpoint)
	if err != nil || st.Leader != followerID {
		t.Fatalf("after MoveLeader the leader is %x, want %x (%v)", st.GetLeader(), followerID, err)
	}
}

// etcd's client has no variable for this one.
var errLearnerNotReady = rpctypes.Error(rpctypes.ErrGRPCLearnerNotReady)
