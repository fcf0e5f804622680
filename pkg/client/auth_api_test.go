package client

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/tests/framework"
)

// authFixture is what the auth subtests share, in order: the server, a
// client without credentials, and root's client once auth is on.
type authFixture struct {
	// server is the test of the whole run: clients made by one subtest
	// serve the next ones, so they are closed at its end.
	server *testing.T
	ep     string
	anon   *Client
	root   *Client
	alice  *Client
}

func (f *authFixture) login(user, password string) (*Client, error) {
	c, err := New(Config{Endpoints: []string{f.ep}, Username: user, Password: password})
	if err == nil {
		f.server.Cleanup(func() { c.Close() })
	}
	return c, err
}

// TestAuthAgainstServers runs the Auth calls against a real etcd v3.7.3
// and kvd, each fresh. The subtests run in order and build on each
// other: users and roles are made with auth off, then auth is switched
// on, a user is held to its role's permissions, and auth is switched off.
func TestAuthAgainstServers(t *testing.T) {
	for _, srv := range []struct {
		name  string
		start func(testing.TB, ...string) *framework.Member
	}{
		{"etcd", framework.StartEtcd},
		{"kvd", framework.StartKvd},
	} {
		t.Run(srv.name, func(t *testing.T) {
			m := srv.start(t)
			f := &authFixture{server: t, ep: m.Endpoint, anon: newTestClient(t, Config{Endpoints: []string{m.Endpoint}})}
			for _, tt := range []struct {
				name string
				fn   func(*testing.T, *authFixture)
			}{
				{"Admin", testAuthAdmin},
				{"Mistakes", testAuthMistakes},
				{"Enable", testAuthEnable},
				{"Permissions", testAuthPermissions},
				{"PasswordChange", testAuthPasswordChange},
				{"Disable", testAuthDisable},
			} {
				if !t.Run(tt.name, func(t *testing.T) { tt.fn(t, f) }) {
					return // the later steps need this one's outcome
				}
			}
		})
	}
}

// perms shows a role's permissions as "TYPE [key, end)" lines.
func perms(r *AuthRoleGetResponse) string {
	var out []string
	for _, p := range r.Perm {
		out = append(out, fmt.Sprintf("%s [%q, %q)", p.PermType, p.Key, p.RangeEnd))
	}
	return strings.Join(out, "; ")
}

func wantList(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

// testAuthAdmin: with auth off anyone manages users and roles. Roles
// keep their permissions sorted by key, lists come sorted by name, and
// deleting a role takes it from its users.
func testAuthAdmin(t *testing.T, f *authFixture) {
	ctx, c := testCtx(t), f.anon
	try(c.RoleAdd(ctx, "reader")).must(t)
	try(c.RoleAdd(ctx, "writer")).must(t)
	try(c.RoleGrantPermission(ctx, "reader", "/p/", GetPrefixRangeEnd("/p/"), PermReadWrite)).must(t)
	try(c.RoleGrantPermission(ctx, "reader", "/a", "", PermRead)).must(t)
	try(c.RoleGrantPermission(ctx, "writer", "/w", "\x00", PermWrite)).must(t)
	if got := perms(try(c.RoleGet(ctx, "reader")).must(t)); got != `READ ["/a", ""); READWRITE ["/p/", "/p0")` {
		t.Fatalf("reader's permissions: %s", got)
	}
	wantList(t, "roles", try(c.RoleList(ctx)).must(t).Roles, "reader", "writer")

	try(c.UserAdd(ctx, "alice", "pw-a")).must(t)
	try(c.UserAddWithOptions(ctx, "carol", "", &UserAddOptions{NoPassword: true})).must(t)
	try(c.UserGrantRole(ctx, "alice", "writer")).must(t)
	try(c.UserGrantRole(ctx, "alice", "reader")).must(t)
	wantList(t, "alice's roles", try(c.UserGet(ctx, "alice")).must(t).Roles, "reader", "writer")
	wantList(t, "users", try(c.UserList(ctx)).must(t).Users, "alice", "carol")

	try(c.RoleRevokePermission(ctx, "writer", "/w", "\x00")).must(t)
	if got := perms(try(c.RoleGet(ctx, "writer")).must(t)); got != "" {
		t.Fatalf("writer's permissions after the revoke: %s", got)
	}
	try(c.UserGrantRole(ctx, "carol", "writer")).must(t)
	try(c.RoleDelete(ctx, "writer")).must(t)
	wantList(t, "roles after a delete", try(c.RoleList(ctx)).must(t).Roles, "reader")
	wantList(t, "alice's roles after a delete", try(c.UserGet(ctx, "alice")).must(t).Roles, "reader")
	try(c.UserRevokeRole(ctx, "alice", "reader")).must(t)
	wantList(t, "alice's roles after a revoke", try(c.UserGet(ctx, "alice")).must(t).Roles)
	try(c.UserGrantRole(ctx, "alice", "reader")).must(t)
	try(c.UserDelete(ctx, "carol")).must(t)
	wantList(t, "users after a delete", try(c.UserList(ctx)).must(t).Users, "alice")

	if s := try(c.AuthStatus(ctx)).must(t); s.Enabled {
		t.Fatalf("auth status before enabling: %v", s)
	}
	if _, err := c.Authenticate(ctx, "alice", "pw-a"); !errors.Is(err, rpctypes.ErrAuthNotEnabled) {
		t.Fatalf("authenticate with auth off: %v", err)
	}
}

// testAuthMistakes: unknown users and roles, duplicates, empty names and
// keys, and grants that were never made are refused with etcd's errors.
func testAuthMistakes(t *testing.T, f *authFixture) {
	ctx, c := testCtx(t), f.anon
	for _, tc := range []struct {
		what string
		err  error
		want error
	}{
		{"get an unknown user", second(c.UserGet(ctx, "nobody")), rpctypes.ErrUserNotFound},
		{"get an unknown role", second(c.RoleGet(ctx, "nothing")), rpctypes.ErrRoleNotFound},
		{"add a user twice", second(c.UserAdd(ctx, "alice", "x")), rpctypes.ErrUserAlreadyExist},
		{"add a user without a name", second(c.UserAdd(ctx, "", "x")), rpctypes.ErrUserEmpty},
		{"add a role twice", second(c.RoleAdd(ctx, "reader")), rpctypes.ErrRoleAlreadyExist},
		{"add a role without a name", second(c.RoleAdd(ctx, "")), rpctypes.ErrRoleEmpty},
		{"grant to an unknown user", second(c.UserGrantRole(ctx, "nobody", "reader")), rpctypes.ErrUserNotFound},
		{"grant an unknown role", second(c.UserGrantRole(ctx, "alice", "nothing")), rpctypes.ErrRoleNotFound},
		{"revoke a role not granted", second(c.UserRevokeRole(ctx, "alice", "nothing")), rpctypes.ErrRoleNotGranted},
		{"grant on an empty key", second(c.RoleGrantPermission(ctx, "reader", "", "", PermRead)), rpctypes.ErrInvalidAuthMgmt},
		{"grant a range ending before it starts", second(c.RoleGrantPermission(ctx, "reader", "b", "a", PermRead)), rpctypes.ErrInvalidAuthMgmt},
		{"grant to an unknown role", second(c.RoleGrantPermission(ctx, "nothing", "k", "", PermRead)), rpctypes.ErrRoleNotFound},
		{"revoke a permission not granted", second(c.RoleRevokePermission(ctx, "reader", "/zz", "")), rpctypes.ErrPermissionNotGranted},
		{"delete an unknown user", second(c.UserDelete(ctx, "nobody")), rpctypes.ErrUserNotFound},
		{"delete an unknown role", second(c.RoleDelete(ctx, "nothing")), rpctypes.ErrRoleNotFound},
		{"change an unknown user's password", second(c.UserChangePassword(ctx, "nobody", "x")), rpctypes.ErrUserNotFound},
		{"enable without a root user", second(c.AuthEnable(ctx)), rpctypes.ErrRootUserNotExist},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.what, tc.err, tc.want)
		}
	}
	if _, err := StrToPermissionType("execute"); err == nil || err.Error() != "invalid permission type: execute" {
		t.Errorf("an unknown permission type: %v", err)
	}
	if p, err := StrToPermissionType("readWrite"); err != nil || p != PermReadWrite {
		t.Errorf("readWrite: %v %v", p, err)
	}
}

func second[R any](_ R, err error) error { return err }

// testAuthEnable: auth needs a root user with the root role. Once on,
// calls without a user are refused; a client that logged in while auth
// was off gets a token on its next call; a wrong password or an unknown
// user cannot log in.
func testAuthEnable(t *testing.T, f *authFixture) {
	ctx, c := testCtx(t), f.anon
	try(c.UserAdd(ctx, "root", "rootpw")).must(t)
	if _, err := c.AuthEnable(ctx); !errors.Is(err, rpctypes.ErrRootRoleNotExist) {
		t.Fatalf("enable while root lacks the root role: %v", err)
	}
	try(c.RoleAdd(ctx, "root")).must(t)
	try(c.UserGrantRole(ctx, "root", "root")).must(t)
	root, err := f.login("root", "rootpw") // auth is off: no token yet
	if err != nil {
		t.Fatal(err)
	}
	try(c.AuthEnable(ctx)).must(t)
	f.root = root

	if _, err := c.Get(ctx, "/a"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("read without a user: %v", err)
	}
	if _, err := c.UserList(ctx); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("list users without a user: %v", err)
	}
	try(root.Put(ctx, "/a", "1")).must(t)
	wantList(t, "users", try(root.UserList(ctx)).must(t).Users, "alice", "root")
	if s := try(root.AuthStatus(ctx)).must(t); !s.Enabled || s.AuthRevision == 0 {
		t.Fatalf("auth status once enabled: %v", s)
	}
	if r := try(c.Authenticate(ctx, "alice", "pw-a")).must(t); r.Token == "" {
		t.Fatalf("authenticate: %v", r)
	}
	for _, cred := range [][2]string{{"alice", "wrong"}, {"nobody", "pw-a"}} {
		if _, err := f.login(cred[0], cred[1]); !errors.Is(err, rpctypes.ErrAuthFailed) {
			t.Fatalf("log in as %s with %s: %v", cred[0], cred[1], err)
		}
	}
}

// testAuthPermissions: alice has the reader role (read /a, read and
// write under /p/): what it allows passes, everything else is refused,
// managing auth included; a permission granted later applies at once.
func testAuthPermissions(t *testing.T, f *authFixture) {
	ctx, root := testCtx(t), f.root
	alice, err := f.login("alice", "pw-a")
	if err != nil {
		t.Fatal(err)
	}
	f.alice = alice
	try(root.Put(ctx, "/b", "1")).must(t)
	if r := try(alice.Get(ctx, "/a")).must(t); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "1" {
		t.Fatalf("alice reads /a: %v", r.Kvs)
	}
	try(alice.Put(ctx, "/p/x", "2")).must(t)
	if r := try(alice.Get(ctx, "/p/", WithPrefix())).must(t); len(r.Kvs) != 1 {
		t.Fatalf("alice reads /p/: %v", r.Kvs)
	}
	try(alice.Delete(ctx, "/p/x")).must(t)
	denied := map[string]error{
		"write /a":        second(alice.Put(ctx, "/a", "2")),
		"read /b":         second(alice.Get(ctx, "/b")),
		"delete /a":       second(alice.Delete(ctx, "/a")),
		"read all keys":   second(alice.Get(ctx, "", WithPrefix())),
		"read /p/ on":     second(alice.Get(ctx, "/p/", WithFromKey())),
		"list users":      second(alice.UserList(ctx)),
		"add a role":      second(alice.RoleAdd(ctx, "mine")),
		"grant a role":    second(alice.UserGrantRole(ctx, "alice", "root")),
		"disable auth":    second(alice.AuthDisable(ctx)),
		"txn writing /b":  second(alice.Txn(ctx).Then(OpPut("/b", "2")).Commit()),
		"compare on /b":   second(alice.Txn(ctx).If(Compare(Value("/b"), "=", "1")).Commit()),
		"change password": second(alice.UserChangePassword(ctx, "root", "x")),
	}
	for what, err := range denied {
		if !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("alice may not %s: got %v", what, err)
		}
	}
	try(root.RoleGrantPermission(ctx, "reader", "/a", "", PermReadWrite)).must(t)
	try(alice.Put(ctx, "/a", "3")).must(t)
	try(root.RoleRevokePermission(ctx, "reader", "/a", "")).must(t)
	if _, err := alice.Get(ctx, "/a"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("alice reads /a after the revoke: %v", err)
	}
}

// testAuthPasswordChange: changing alice's password ends her tokens. Her
// client then logs in again with the password it was given, which no
// longer works; a client with the new password works.
func testAuthPasswordChange(t *testing.T, f *authFixture) {
	ctx := testCtx(t)
	try(f.alice.Get(ctx, "/p/x")).must(t)
	try(f.root.UserChangePassword(ctx, "alice", "pw-b")).must(t)
	if _, err := f.alice.Get(ctx, "/p/x"); !errors.Is(err, rpctypes.ErrAuthFailed) {
		t.Fatalf("read with the old password's token: %v", err)
	}
	alice, err := f.login("alice", "pw-b")
	if err != nil {
		t.Fatal(err)
	}
	try(alice.Put(ctx, "/p/y", "1")).must(t)
	if _, err := f.login("alice", "pw-a"); !errors.Is(err, rpctypes.ErrAuthFailed) {
		t.Fatalf("log in with the old password: %v", err)
	}
}

// testAuthDisable: only root may switch auth off; then calls without a
// user pass again, and clients with a user keep working.
func testAuthDisable(t *testing.T, f *authFixture) {
	ctx := testCtx(t)
	try(f.root.AuthDisable(ctx)).must(t)
	if s := try(f.anon.AuthStatus(ctx)).must(t); s.Enabled {
		t.Fatalf("auth status after disabling: %v", s)
	}
	try(f.anon.Put(ctx, "/b", "2")).must(t)
	try(f.root.Get(ctx, "/b")).must(t)
	wantList(t, "users", try(f.anon.UserList(ctx)).must(t).Users, "alice", "root")
}
