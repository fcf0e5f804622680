package auth

import (
	"errors"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
)

// records is a Writer and Scanner that keeps what the store stores, by
// bucket.
type records map[string]map[string][]byte

func (r records) PutRecord(bucket, key, value []byte) {
	if r[string(bucket)] == nil {
		r[string(bucket)] = map[string][]byte{}
	}
	r[string(bucket)][string(key)] = value
}

func (r records) DeleteRecord(bucket, key []byte) { delete(r[string(bucket)], string(key)) }

func (r records) Get(bucket, key []byte) []byte { return r[string(bucket)][string(key)] }

func (r records) ForEach(bucket, _ []byte, fn func(k, v []byte) bool) {
	keys := make([]string, 0, len(r[string(bucket)]))
	for k := range r[string(bucket)] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !fn([]byte(k), r[string(bucket)][k]) {
			return
		}
	}
}

func newTestStore(t *testing.T) (*Store, records) {
	t.Helper()
	return New(Config{BcryptCost: bcrypt.MinCost}), records{}
}

// addUser adds user with password pw (hashed as a proposing member
// would) and roles.
func addUser(t *testing.T, s *Store, w records, user, pw string, roles ...string) {
	t.Helper()
	h, err := s.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UserAdd(w, &pb.AuthUserAddRequest{Name: user, HashedPassword: h}); err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		if err := s.UserGrantRole(w, user, r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAdminErrors(t *testing.T) {
	s, w := newTestStore(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.RoleAdd(w, "reader"))
	addUser(t, s, w, "alice", "pw", "reader")
	rev := s.Revision()
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"enable without root", func() error { return s.Enable(w) }, ErrRootUserNotExist},
		{"user with no name", func() error { return s.UserAdd(w, &pb.AuthUserAddRequest{}) }, ErrUserEmpty},
		{"user twice", func() error { return s.UserAdd(w, &pb.AuthUserAddRequest{Name: "alice", HashedPassword: "x"}) }, ErrUserAlreadyExist},
		{"role twice", func() error { return s.RoleAdd(w, "reader") }, ErrRoleAlreadyExist},
		{"role with no name", func() error { return s.RoleAdd(w, "") }, ErrRoleEmpty},
		{"grant unknown role", func() error { return s.UserGrantRole(w, "alice", "nope") }, ErrRoleNotFound},
		{"grant to unknown user", func() error { return s.UserGrantRole(w, "bob", "reader") }, ErrUserNotFound},
		{"revoke role not granted", func() error { return s.UserRevokeRole(w, "alice", "root") }, ErrRoleNotGranted},
		{"permission on empty key", func() error {
			return s.RoleGrantPermission(w, "reader", &authpb.Permission{PermType: authpb.READ})
		}, ErrInvalidAuthMgmt},
		{"permission on reversed range", func() error {
			return s.RoleGrantPermission(w, "reader", &authpb.Permission{Key: []byte("b"), RangeEnd: []byte("a")})
		}, ErrInvalidAuthMgmt},
		{"no permission", func() error { return s.RoleGrantPermission(w, "reader", nil) }, ErrPermissionNotGiven},
		{"revoke permission not granted", func() error { return s.RoleRevokePermission(w, "reader", []byte("a"), nil) }, ErrPermissionNotGranted},
		{"delete unknown user", func() error { return s.UserDelete(w, "bob") }, ErrUserNotFound},
		{"delete unknown role", func() error { return s.RoleDelete(w, "nope") }, ErrRoleNotFound},
	}
	for _, tt := range tests {
		if err := tt.op(); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if s.Revision() != rev {
		t.Errorf("refused changes moved the auth revision from %d to %d", rev, s.Revision())
	}
	// With root, auth enables; then root cannot lose itself.
	must(s.RoleAdd(w, RootRole))
	addUser(t, s, w, RootUser, "rootpw", RootRole)
	must(s.Enable(w))
	for name, err := range map[string]error{
		"delete root":           s.UserDelete(w, RootUser),
		"delete root role":      s.RoleDelete(w, RootRole),
		"revoke root from root": s.UserRevokeRole(w, RootUser, RootRole),
	} {
		if !errors.Is(err, ErrInvalidAuthMgmt) {
			t.Errorf("%s with auth enabled: %v, want ErrInvalidAuthMgmt", name, err)
		}
	}
}

func TestPermissionsFollowChanges(t *testing.T) {
	s, w := newTestStore(t)
	for _, r := range []string{RootRole, "reader", "writer"} {
		if err := s.RoleAdd(w, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RoleGrantPermission(w, "reader", &authpb.Permission{Key: []byte("/app/"), RangeEnd: []byte("/app0"), PermType: authpb.READ}); err != nil {
		t.Fatal(err)
	}
	if err := s.RoleGrantPermission(w, "writer", &authpb.Permission{Key: []byte("/app/x"), PermType: authpb.READWRITE}); err != nil {
		t.Fatal(err)
	}
	addUser(t, s, w, RootUser, "r", RootRole)
	addUser(t, s, w, "alice", "a", "reader", "writer")
	if err := s.Enable(w); err != nil {
		t.Fatal(err)
	}
	alice := func() Info { return Info{User: "alice", Revision: s.Revision()} }
	checks := []struct {
		name string
		err  error
		want error
	}{
		{"read the prefix", s.CanRead(alice(), []byte("/app/"), []byte("/app0")), nil},
		{"read a key under it", s.CanRead(alice(), []byte("/app/y"), nil), nil},
		{"write a key under it", s.CanWrite(alice(), []byte("/app/y"), nil), ErrPermissionDenied},
		{"write the one key", s.CanWrite(alice(), []byte("/app/x"), nil), nil},
		{"read past the prefix", s.CanRead(alice(), []byte("/app/"), []byte("/b")), ErrPermissionDenied},
		{"no user", s.CanRead(Info{}, []byte("/app/x"), nil), ErrUserEmpty},
		{"an old revision", s.CanRead(Info{User: "alice", Revision: 1}, []byte("/app/x"), nil), ErrAuthOldRevision},
		{"root reads anything", s.CanRead(Info{User: RootUser, Revision: s.Revision()}, []byte{0}, []byte{0}), nil},
		{"alice is not admin", s.IsAdmin(alice()), ErrPermissionDenied},
	}
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	// Taking the role away takes effect at the next revision.
	if err := s.UserRevokeRole(w, "alice", "writer"); err != nil {
		t.Fatal(err)
	}
	if err := s.CanWrite(alice(), []byte("/app/x"), nil); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("write after the role was revoked: %v", err)
	}
	// Everything survives recovery from the records.
	r := New(Config{})
	if err := r.Recover(w); err != nil {
		t.Fatal(err)
	}
	if !r.Enabled() || r.Revision() != s.Revision() || r.CanRead(alice(), []byte("/app/z"), nil) != nil {
		t.Errorf("recovered store: enabled %v, revision %d (want %d)", r.Enabled(), r.Revision(), s.Revision())
	}
}

func TestPasswordsAndTokens(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New(Config{BcryptCost: bcrypt.MinCost, TokenTTL: time.Minute, Now: func() time.Time { return now }})
	w := records{}
	if err := s.RoleAdd(w, RootRole); err != nil {
		t.Fatal(err)
	}
	addUser(t, s, w, RootUser, "secret", RootRole)
	if _, err := s.CheckPassword(RootUser, "secret"); !errors.Is(err, ErrAuthNotEnabled) {
		t.Fatalf("login with auth disabled: %v", err)
	}
	if err := s.Enable(w); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second check is answered from the cache
		if _, err := s.CheckPassword(RootUser, "secret"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CheckPassword(RootUser, "wrong"); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	tok := NewToken(7)
	if err := s.Authenticate(RootUser, tok); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Identify(tok); err != nil || info.User != RootUser {
		t.Fatalf("identify = %+v, %v", info, err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := s.Identify(tok); !errors.Is(err, ErrInvalidAuthToken) {
		t.Fatalf("an expired token: %v", err)
	}
	tok = NewToken(8)
	if err := s.Authenticate(RootUser, tok); err != nil {
		t.Fatal(err)
	}
	h, _ := s.HashPassword("new")
	if err := s.UserChangePassword(w, &pb.AuthUserChangePasswordRequest{Name: RootUser, HashedPassword: h}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Identify(tok); !errors.Is(err, ErrInvalidAuthToken) {
		t.Fatalf("a token after its user's password changed: %v", err)
	}
	if _, err := s.CheckPassword(RootUser, "secret"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("the old password after a change (the cache must not answer): %v", err)
	}
}
