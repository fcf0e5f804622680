package client

import (
	"context"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// Auth responses are the wire types, as KV's are.
type (
	AuthenticateResponse             = pb.AuthenticateResponse
	AuthEnableResponse               = pb.AuthEnableResponse
	AuthDisableResponse              = pb.AuthDisableResponse
	AuthStatusResponse               = pb.AuthStatusResponse
	AuthUserAddResponse              = pb.AuthUserAddResponse
	AuthUserDeleteResponse           = pb.AuthUserDeleteResponse
	AuthUserChangePasswordResponse   = pb.AuthUserChangePasswordResponse
	AuthUserGrantRoleResponse        = pb.AuthUserGrantRoleResponse
	AuthUserGetResponse              = pb.AuthUserGetResponse
	AuthUserListResponse             = pb.AuthUserListResponse
	AuthUserRevokeRoleResponse       = pb.AuthUserRevokeRoleResponse
	AuthRoleAddResponse              = pb.AuthRoleAddResponse
	AuthRoleGrantPermissionResponse  = pb.AuthRoleGrantPermissionResponse
	AuthRoleGetResponse              = pb.AuthRoleGetResponse
	AuthRoleListResponse             = pb.AuthRoleListResponse
	AuthRoleRevokePermissionResponse = pb.AuthRoleRevokePermissionResponse
	AuthRoleDeleteResponse           = pb.AuthRoleDeleteResponse
)

// PermissionType says what a permission lets a role do with its keys.
// It is the wire enum itself, so the permissions RoleGet returns compare
// with PermRead, PermWrite and PermReadWrite without conversions.
type PermissionType = authpb.Permission_Type

// The kinds of permission a role can be granted.
const (
	PermRead      = authpb.Permission_READ
	PermWrite     = authpb.Permission_WRITE
	PermReadWrite = authpb.Permission_READWRITE
)

// Permission is one key or range of keys a role may read, write or both.
type Permission = authpb.Permission

// UserAddOptions changes how a user is created: NoPassword makes a user
// that can only authenticate with a TLS client certificate.
type UserAddOptions = authpb.UserAddOptions

// StrToPermissionType reads "read", "write" or "readwrite", in any case.
func StrToPermissionType(s string) (PermissionType, error) {
	if v, ok := authpb.Permission_Type_value[strings.ToUpper(s)]; ok {
		return PermissionType(v), nil
	}
	return PermissionType(-1), fmt.Errorf("invalid permission type: %s", s)
}

// GetPrefixRangeEnd is the range end that, with prefix as the key, covers
// every key starting with prefix (all keys for an empty prefix).
func GetPrefixRangeEnd(prefix string) string { return string(prefixEnd([]byte(prefix))) }

// Auth manages users, roles and their permissions, and switches
// authentication on and off. While it is on, every call needs a user
// (Config.Username and Password) whose roles allow it; managing users and
// roles takes the root role. Changes are sent once and never retried,
// like membership changes; only the calls that read (AuthStatus, UserGet,
// UserList, RoleGet, RoleList) are repeated after an endpoint fails.
type Auth interface {
	// Authenticate checks a name and password and returns a token for
	// them. The client logs in by itself when given credentials; this is
	// for those who handle tokens themselves.
	Authenticate(ctx context.Context, name, password string) (*AuthenticateResponse, error)
	// AuthEnable turns authentication on. It fails unless a user named
	// root exists and has the root role.
	AuthEnable(ctx context.Context) (*AuthEnableResponse, error)
	// AuthDisable turns authentication off: every call is then allowed.
	AuthDisable(ctx context.Context) (*AuthDisableResponse, error)
	// AuthStatus says whether authentication is on, and the revision of
	// the users, roles and permissions.
	AuthStatus(ctx context.Context) (*AuthStatusResponse, error)

	// UserAdd creates a user with a password.
	UserAdd(ctx context.Context, name, password string) (*AuthUserAddResponse, error)
	// UserAddWithOptions creates a user; with NoPassword set the password
	// is ignored and the user can only be authenticated by certificate.
	UserAddWithOptions(ctx context.Context, name, password string, opts *UserAddOptions) (*AuthUserAddResponse, error)
	// UserDelete deletes a user; its tokens stop working.
	UserDelete(ctx context.Context, name string) (*AuthUserDeleteResponse, error)
	// UserChangePassword replaces a user's password; its tokens stop
	// working, so clients logged in with the old one fail from then on.
	UserChangePassword(ctx context.Context, name, password string) (*AuthUserChangePasswordResponse, error)
	// UserGrantRole gives a user a role's permissions.
	UserGrantRole(ctx context.Context, user, role string) (*AuthUserGrantRoleResponse, error)
	// UserGet lists a user's roles.
	UserGet(ctx context.Context, name string) (*AuthUserGetResponse, error)
	// UserList lists every user, sorted by name.
	UserList(ctx context.Context) (*AuthUserListResponse, error)
	// UserRevokeRole takes a role away from a user.
	UserRevokeRole(ctx context.Context, name, role string) (*AuthUserRevokeRoleResponse, error)

	// RoleAdd creates a role without permissions.
	RoleAdd(ctx context.Context, name string) (*AuthRoleAddResponse, error)
	// RoleGrantPermission lets a role read, write or both the key, or the
	// keys in [key, rangeEnd) when rangeEnd is set; a rangeEnd of "\x00"
	// means every key from key on. The key must not be empty.
	RoleGrantPermission(ctx context.Context, name, key, rangeEnd string, permType PermissionType) (*AuthRoleGrantPermissionResponse, error)
	// RoleGet lists a role's permissions.
	RoleGet(ctx context.Context, role string) (*AuthRoleGetResponse, error)
	// RoleList lists every role, sorted by name.
	RoleList(ctx context.Context) (*AuthRoleListResponse, error)
	// RoleRevokePermission takes away the permission granted on exactly
	// this key and range end.
	RoleRevokePermission(ctx context.Context, role, key, rangeEnd string) (*AuthRoleRevokePermissionResponse, error)
	// RoleDelete deletes a role, and takes it from every user that had it.
	RoleDelete(ctx context.Context, role string) (*AuthRoleDeleteResponse, error)
}

type authAPI struct{ remote pb.AuthClient }

// unary makes one call and shapes its error as every call of the client
// does.
func unary[Req, Resp any](ctx context.Context, call func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	resp, err := call(ctx, req)
	return resp, toErr(ctx, err)
}

func (a *authAPI) Authenticate(ctx context.Context, name, password string) (*AuthenticateResponse, error) {
	return unary(ctx, a.remote.Authenticate, &pb.AuthenticateRequest{Name: name, Password: password})
}

func (a *authAPI) AuthEnable(ctx context.Context) (*AuthEnableResponse, error) {
	return unary(ctx, a.remote.AuthEnable, &pb.AuthEnableRequest{})
}

func (a *authAPI) AuthDisable(ctx context.Context) (*AuthDisableResponse, error) {
	return unary(ctx, a.remote.AuthDisable, &pb.AuthDisableRequest{})
}

func (a *authAPI) AuthStatus(ctx context.Context) (*AuthStatusResponse, error) {
	return unary(ctx, a.remote.AuthStatus, &pb.AuthStatusRequest{})
}

func (a *authAPI) UserAdd(ctx context.Context, name, password string) (*AuthUserAddResponse, error) {
	return a.UserAddWithOptions(ctx, name, password, &UserAddOptions{})
}

func (a *authAPI) UserAddWithOptions(ctx context.Context, name, password string, opts *UserAddOptions) (*AuthUserAddResponse, error) {
	return unary(ctx, a.remote.UserAdd, &pb.AuthUserAddRequest{Name: name, Password: password, Options: opts})
}

func (a *authAPI) UserDelete(ctx context.Context, name string) (*AuthUserDeleteResponse, error) {
	return unary(ctx, a.remote.UserDelete, &pb.AuthUserDeleteRequest{Name: name})
}

func (a *authAPI) UserChangePassword(ctx context.Context, name, password string) (*AuthUserChangePasswordResponse, error) {
	return unary(ctx, a.remote.UserChangePassword, &pb.AuthUserChangePasswordRequest{Name: name, Password: password})
}

func (a *authAPI) UserGrantRole(ctx context.Context, user, role string) (*AuthUserGrantRoleResponse, error) {
	return unary(ctx, a.remote.UserGrantRole, &pb.AuthUserGrantRoleRequest{User: user, Role: role})
}

func (a *authAPI) UserGet(ctx context.Context, name string) (*AuthUserGetResponse, error) {
	return unary(ctx, a.remote.UserGet, &pb.AuthUserGetRequest{Name: name})
}

func (a *authAPI) UserList(ctx context.Context) (*AuthUserListResponse, error) {
	return unary(ctx, a.remote.UserList, &pb.AuthUserListRequest{})
}

func (a *authAPI) UserRevokeRole(ctx context.Context, name, role string) (*AuthUserRevokeRoleResponse, error) {
	return unary(ctx, a.remote.UserRevokeRole, &pb.AuthUserRevokeRoleRequest{Name: name, Role: role})
}

func (a *authAPI) RoleAdd(ctx context.Context, name string) (*AuthRoleAddResponse, error) {
	return unary(ctx, a.remote.RoleAdd, &pb.AuthRoleAddRequest{Name: name})
}

func (a *authAPI) RoleGrantPermission(ctx context.Context, name, key, rangeEnd string, permType PermissionType) (*AuthRoleGrantPermissionResponse, error) {
	perm := &Permission{Key: []byte(key), RangeEnd: []byte(rangeEnd), PermType: permType}
	return unary(ctx, a.remote.RoleGrantPermission, &pb.AuthRoleGrantPermissionRequest{Name: name, Perm: perm})
}

func (a *authAPI) RoleGet(ctx context.Context, role string) (*AuthRoleGetResponse, error) {
	return unary(ctx, a.remote.RoleGet, &pb.AuthRoleGetRequest{Role: role})
}

func (a *authAPI) RoleList(ctx context.Context) (*AuthRoleListResponse, error) {
	return unary(ctx, a.remote.RoleList, &pb.AuthRoleListRequest{})
}

func (a *authAPI) RoleRevokePermission(ctx context.Context, role, key, rangeEnd string) (*AuthRoleRevokePermissionResponse, error) {
	return unary(ctx, a.remote.RoleRevokePermission,
		&pb.AuthRoleRevokePermissionRequest{Role: role, Key: []byte(key), RangeEnd: []byte(rangeEnd)})
}

func (a *authAPI) RoleDelete(ctx context.Context, role string) (*AuthRoleDeleteResponse, error) {
	return unary(ctx, a.remote.RoleDelete, &pb.AuthRoleDeleteRequest{Role: role})
}
