package client

import (
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/tests/framework"
)

// TestAuthAgainstEtcd logs in with a user and password, and keeps
// working after the server forgets the token (etcd's simple tokens live
// one second here): the client logs in again and repeats the call, even a
// write, since the server refused it without doing anything.
func TestAuthAgainstEtcd(t *testing.T) {
	m := framework.StartEtcd(t, "--auth-token-ttl", "1")
	admin := newTestClient(t, Config{Endpoints: []string{m.Endpoint}})
	ctx := testCtx(t)
	auth := pb.NewAuthClient(admin.conn)
	try(auth.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "root", Password: "secret"})).must(t)
	try(auth.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: "root"})).must(t)
	try(auth.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"})).must(t)
	try(auth.AuthEnable(ctx, &pb.AuthEnableRequest{})).must(t)

	if _, err := admin.Get(ctx, "k"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("read without credentials: %v", err)
	}
	if _, err := New(Config{Endpoints: []string{m.Endpoint}, Username: "root", Password: "wrong"}); !errors.Is(err, rpctypes.ErrAuthFailed) {
		t.Fatalf("login with a wrong password: %v", err)
	}
	c := newTestClient(t, Config{Endpoints: []string{m.Endpoint}, Username: "root", Password: "secret", DialTimeout: 5 * time.Second})
	try(c.Put(ctx, "k", "v")).must(t)
	time.Sleep(2500 * time.Millisecond)
	try(c.Put(ctx, "k", "w")).must(t)
	if r := try(c.Get(ctx, "k")).must(t); string(r.Kvs[0].Value) != "w" {
		t.Fatalf("read after the token expired: %v", r.Kvs)
	}
	if _, err := New(Config{Endpoints: []string{m.Endpoint}, Username: "root", Password: "x", Token: "t"}); err == nil {
		t.Fatal("password and token together were accepted")
	}
}
