// Package auth is kvd's auth store: users with bcrypt password hashes,
// roles with key permissions, whether auth is enabled, and the auth
// revision that every change moves.
//
// Changes arrive as raft entries applied in log order, so every member
// holds the same users and roles, stored in the member's database in the
// same batch as the entry. Each user's permissions are merged into sorted
// key intervals whenever anything changes, so a check is a binary search.
// Passwords are checked outside the apply path (bcrypt is slow by design),
// and a verified password is remembered so that repeated logins do not
// pay bcrypt again.
package auth

import (
	"errors"
	"slices"
	"sync"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

// The root user and role, as etcd names them: auth can only be enabled
// while the root user exists and has the root role, which may do
// anything.
const (
	RootUser = "root"
	RootRole = "root"
)

// Errors, each of which the API turns into etcd's.
var (
	ErrRootUserNotExist     = errors.New("auth: root user does not exist")
	ErrRootRoleNotExist     = errors.New("auth: root user does not have root role")
	ErrUserAlreadyExist     = errors.New("auth: user already exists")
	ErrUserEmpty            = errors.New("auth: user name is empty")
	ErrUserNotFound         = errors.New("auth: user not found")
	ErrRoleAlreadyExist     = errors.New("auth: role already exists")
	ErrRoleNotFound         = errors.New("auth: role not found")
	ErrRoleEmpty            = errors.New("auth: role name is empty")
	ErrPermissionNotGiven   = errors.New("auth: permission not given")
	ErrAuthFailed           = errors.New("auth: authentication failed, invalid user ID or password")
	ErrNoPasswordUser       = errors.New("auth: authentication failed, password was given for no password user")
	ErrPermissionDenied     = errors.New("auth: permission denied")
	ErrRoleNotGranted       = errors.New("auth: role is not granted to the user")
	ErrPermissionNotGranted = errors.New("auth: permission is not granted to the role")
	ErrAuthNotEnabled       = errors.New("auth: authentication is not enabled")
	ErrAuthOldRevision      = errors.New("auth: revision in header is old")
	ErrInvalidAuthToken     = errors.New("auth: invalid auth token")
	ErrInvalidAuthMgmt      = errors.New("auth: invalid auth management")
	// ErrVerifyOnly is a login at a member that holds only the public
	// key of --auth-token jwt: it checks tokens but cannot sign one.
	ErrVerifyOnly = errors.New("auth: token signing attempted with verify-only key")
)

var (
	enabledKey  = []byte("authEnabled")
	revisionKey = []byte("authRevision")
	// enabledAtKey holds the auth revision auth was last enabled at,
	// which self-contained tokens bind to (Store.credential). A database
	// from before it was kept has none, read as 0 on every member alike.
	enabledAtKey = []byte("authEnabledAt")
)

// Writer stores auth records in the same database batch as the raft
// entry that changed them: the applier's write txn.
type Writer interface {
	PutRecord(bucket, key, value []byte)
	DeleteRecord(bucket, key []byte)
}

// Scanner reads the records of a bucket in order: a backend transaction.
type Scanner interface {
	ForEach(bucket, start []byte, fn func(k, v []byte) bool)
	Get(bucket, key []byte) []byte
}

// Store is one member's auth state.
type Store struct {
	cfg Config

	mu       sync.RWMutex
	enabled  bool
	revision uint64
	// enabledAt is the revision auth was last enabled at.
	enabledAt uint64
	users     map[string]*authpb.User
	roles     map[string]*authpb.Role
	perms     map[string]*userPerms

	passwords passwordCache
	tokens    tokenProvider
}

// New returns an empty store; Recover fills it from a database.
func New(cfg Config) *Store {
	cfg.fill()
	return &Store{
		cfg:       cfg,
		revision:  1,
		users:     map[string]*authpb.User{},
		roles:     map[string]*authpb.Role{},
		perms:     map[string]*userPerms{},
		passwords: passwordCache{cost: cfg.BcryptCost},
		tokens:    newTokenProvider(cfg),
	}
}

// newTokenProvider chooses the kind of token cfg.Token names.
func newTokenProvider(cfg Config) tokenProvider {
	if cfg.Token.jwt != nil {
		return newJWTTokens(cfg.Token.jwt, cfg.Now)
	}
	return newSimpleTokens(cfg.TokenTTL, cfg.Now)
}

// Recover replaces the store's state with what db holds.
func (s *Store) Recover(db Scanner) error {
	users := map[string]*authpb.User{}
	roles := map[string]*authpb.Role{}
	var err error
	db.ForEach(backend.AuthUsers, nil, func(k, v []byte) bool {
		u := new(authpb.User)
		if err = proto.Unmarshal(v, u); err == nil {
			users[string(u.Name)] = u
		}
		return err == nil
	})
	if err == nil {
		db.ForEach(backend.AuthRoles, nil, func(k, v []byte) bool {
			r := new(authpb.Role)
			if err = proto.Unmarshal(v, r); err == nil {
				roles[string(r.Name)] = r
			}
			return err == nil
		})
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users, s.roles = users, roles
	s.enabled = len(db.Get(backend.Auth, enabledKey)) == 1 && db.Get(backend.Auth, enabledKey)[0] == 1
	// A store no change has been made to is at revision 1, as etcd's.
	s.revision = max(1, getUint(db.Get(backend.Auth, revisionKey)))
	s.enabledAt = getUint(db.Get(backend.Auth, enabledAtKey))
	s.rebuild()
	return nil
}

// rebuild merges every user's permissions again. The caller holds mu.
func (s *Store) rebuild() {
	s.perms = make(map[string]*userPerms, len(s.users))
	for name, u := range s.users {
		s.perms[name] = permsOf(u, s.roles)
	}
}

// Enabled says whether requests must carry a user.
func (s *Store) Enabled() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.enabled
}

// Revision moves with every change of users, roles or permissions.
func (s *Store) Revision() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.revision
}

// Status answers AuthStatus.
func (s *Store) Status() *pb.AuthStatusResponse {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &pb.AuthStatusResponse{Header: &pb.ResponseHeader{}, Enabled: s.enabled, AuthRevision: s.revision}
}

// UserGet describes a user.
func (s *Store) UserGet(name string) (*pb.AuthUserGetResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.users[name]
	if u == nil {
		return nil, ErrUserNotFound
	}
	return &pb.AuthUserGetResponse{Header: &pb.ResponseHeader{}, Roles: slices.Clone(u.Roles)}, nil
}

// UserList lists users by name.
func (s *Store) UserList() *pb.AuthUserListResponse {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.users))
	for n := range s.users {
		names = append(names, n)
	}
	slices.Sort(names)
	return &pb.AuthUserListResponse{Header: &pb.ResponseHeader{}, Users: names}
}

// RoleGet describes a role's permissions.
func (s *Store) RoleGet(name string) (*pb.AuthRoleGetResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.roles[name]
	if r == nil {
		return nil, ErrRoleNotFound
	}
	resp := &pb.AuthRoleGetResponse{Header: &pb.ResponseHeader{}}
	if name == RootRole {
		// The root role may do anything, whatever it was granted.
		resp.Perm = []*authpb.Permission{{PermType: authpb.READWRITE, Key: []byte{}, RangeEnd: []byte{0}}}
		return resp, nil
	}
	for _, p := range r.KeyPermission {
		resp.Perm = append(resp.Perm, proto.Clone(p).(*authpb.Permission))
	}
	return resp, nil
}

// RoleList lists roles by name.
func (s *Store) RoleList() *pb.AuthRoleListResponse {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.roles))
	for n := range s.roles {
		names = append(names, n)
	}
	slices.Sort(names)
	return &pb.AuthRoleListResponse{Header: &pb.ResponseHeader{}, Roles: names}
}

// HasRole says whether user has role.
func (s *Store) HasRole(user, role string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.users[user]
	return u != nil && slices.Contains(u.Roles, role)
}
