package auth

import (
	"bytes"
	"encoding/binary"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/backend"
)

// The changes below run as raft entries apply, with w the entry's write
// txn. Each that changes anything moves the revision, stores what it
// changed, and merges permissions again.

// Enable turns auth on, once the root user exists with the root role.
func (s *Store) Enable(w Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enabled {
		return nil
	}
	u := s.users[RootUser]
	switch {
	case u == nil:
		return ErrRootUserNotExist
	case !slices.Contains(u.Roles, RootRole):
		return ErrRootRoleNotExist
	}
	// As etcd, enabling does not move the revision: nothing any user
	// may do has changed, only that requests must now say who they are.
	s.enabled = true
	w.PutRecord(backend.Auth, enabledKey, []byte{1})
	s.enabledAt = s.revision
	w.PutRecord(backend.Auth, enabledAtKey, binary.BigEndian.AppendUint64(nil, s.enabledAt))
	return nil
}

// Disable turns auth off; tokens given out so far stop working (JWTs
// because Enable changes every credential).
func (s *Store) Disable(w Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.enabled {
		return
	}
	s.enabled = false
	w.PutRecord(backend.Auth, enabledKey, []byte{0})
	s.commit(w)
	s.tokens.clear()
}

// commit moves the revision and merges permissions again. The caller
// holds mu.
func (s *Store) commit(w Writer) {
	s.revision++
	w.PutRecord(backend.Auth, revisionKey, binary.BigEndian.AppendUint64(nil, s.revision))
	s.rebuild()
}

func (s *Store) putUser(w Writer, u *authpb.User) {
	b, _ := proto.Marshal(u) // a user of bytes and strings always encodes
	w.PutRecord(backend.AuthUsers, u.Name, b)
	s.users[string(u.Name)] = u
}

func (s *Store) putRole(w Writer, r *authpb.Role) {
	b, _ := proto.Marshal(r)
	w.PutRecord(backend.AuthRoles, r.Name, b)
	s.roles[string(r.Name)] = r
}

// UserAdd creates a user with the hash the proposing member computed, or
// with no password.
func (s *Store) UserAdd(w Writer, r *pb.AuthUserAddRequest) error {
	if r.Name == "" {
		return ErrUserEmpty
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[r.Name] != nil {
		return ErrUserAlreadyExist
	}
	u := &authpb.User{Name: []byte(r.Name), Options: r.Options}
	if u.Options == nil {
		u.Options = &authpb.UserAddOptions{}
	}
	if !u.Options.NoPassword {
		if r.HashedPassword == "" {
			return ErrNoPasswordUser
		}
		u.Password = []byte(r.HashedPassword)
	}
	s.putUser(w, u)
	s.commit(w)
	return nil
}

// UserDelete removes a user, and every token it holds.
func (s *Store) UserDelete(w Writer, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enabled && name == RootUser {
		return ErrInvalidAuthMgmt
	}
	if s.users[name] == nil {
		return ErrUserNotFound
	}
	delete(s.users, name)
	w.DeleteRecord(backend.AuthUsers, []byte(name))
	s.commit(w)
	s.tokens.forgetUser(name)
	return nil
}

// UserChangePassword sets a user's password hash, and ends its tokens.
func (s *Store) UserChangePassword(w Writer, r *pb.AuthUserChangePasswordRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.users[r.Name]
	if old == nil {
		return ErrUserNotFound
	}
	u := proto.Clone(old).(*authpb.User)
	if u.Options == nil || !u.Options.NoPassword {
		if r.HashedPassword == "" {
			return ErrNoPasswordUser
		}
		u.Password = []byte(r.HashedPassword)
	}
	s.putUser(w, u)
	s.commit(w)
	s.tokens.forgetUser(r.Name)
	return nil
}

// UserGrantRole gives a user a role; the root role need not exist yet.
func (s *Store) UserGrantRole(w Writer, user, role string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.users[user]
	if old == nil {
		return ErrUserNotFound
	}
	if role != RootRole && s.roles[role] == nil {
		return ErrRoleNotFound
	}
	if slices.Contains(old.Roles, role) {
		return nil
	}
	u := proto.Clone(old).(*authpb.User)
	u.Roles = append(u.Roles, role)
	slices.Sort(u.Roles)
	s.putUser(w, u)
	s.commit(w)
	return nil
}

// UserRevokeRole takes a role from a user.
func (s *Store) UserRevokeRole(w Writer, user, role string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enabled && user == RootUser && role == RootRole {
		return ErrInvalidAuthMgmt
	}
	old := s.users[user]
	if old == nil {
		return ErrUserNotFound
	}
	if !slices.Contains(old.Roles, role) {
		return ErrRoleNotGranted
	}
	u := proto.Clone(old).(*authpb.User)
	u.Roles = slices.DeleteFunc(u.Roles, func(r string) bool { return r == role })
	s.putUser(w, u)
	s.commit(w)
	return nil
}

// RoleAdd creates a role with no permissions.
func (s *Store) RoleAdd(w Writer, name string) error {
	if name == "" {
		return ErrRoleEmpty
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.roles[name] != nil {
		return ErrRoleAlreadyExist
	}
	s.putRole(w, &authpb.Role{Name: []byte(name)})
	s.commit(w)
	return nil
}

// RoleDelete removes a role, and takes it from every user.
func (s *Store) RoleDelete(w Writer, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enabled && name == RootRole {
		return ErrInvalidAuthMgmt
	}
	if s.roles[name] == nil {
		return ErrRoleNotFound
	}
	delete(s.roles, name)
	w.DeleteRecord(backend.AuthRoles, []byte(name))
	for _, old := range s.users {
		if slices.Contains(old.Roles, name) {
			u := proto.Clone(old).(*authpb.User)
			u.Roles = slices.DeleteFunc(u.Roles, func(r string) bool { return r == name })
			s.putUser(w, u)
		}
	}
	s.commit(w)
	return nil
}

// RoleGrantPermission adds a permission to a role, or changes the type of
// one on the same range.
func (s *Store) RoleGrantPermission(w Writer, name string, perm *authpb.Permission) error {
	if perm == nil {
		return ErrPermissionNotGiven
	}
	if !validRange(perm.Key, perm.RangeEnd) {
		return ErrInvalidAuthMgmt
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.roles[name]
	if old == nil {
		return ErrRoleNotFound
	}
	r := proto.Clone(old).(*authpb.Role)
	i := slices.IndexFunc(r.KeyPermission, func(p *authpb.Permission) bool {
		return bytes.Equal(p.Key, perm.Key) && bytes.Equal(p.RangeEnd, perm.RangeEnd)
	})
	if i >= 0 {
		r.KeyPermission[i].PermType = perm.PermType
	} else {
		r.KeyPermission = append(r.KeyPermission, &authpb.Permission{Key: perm.Key, RangeEnd: perm.RangeEnd, PermType: perm.PermType})
		slices.SortStableFunc(r.KeyPermission, func(a, b *authpb.Permission) int { return bytes.Compare(a.Key, b.Key) })
	}
	s.putRole(w, r)
	s.commit(w)
	return nil
}

// RoleRevokePermission removes a role's permission on exactly that range.
func (s *Store) RoleRevokePermission(w Writer, name string, key, end []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.roles[name]
	if old == nil {
		return ErrRoleNotFound
	}
	r := proto.Clone(old).(*authpb.Role)
	n := len(r.KeyPermission)
	r.KeyPermission = slices.DeleteFunc(r.KeyPermission, func(p *authpb.Permission) bool {
		return bytes.Equal(p.Key, key) && bytes.Equal(p.RangeEnd, end)
	})
	if len(r.KeyPermission) == n {
		return ErrPermissionNotGranted
	}
	s.putRole(w, r)
	s.commit(w)
	return nil
}

func getUint(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
