package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/backend"
)

// Users, roles and whether auth is enabled change through raft, like
// keys; every change is checked, as it applies, against the permissions
// of the user the proposing member named (apply/auth.go). Reads are
// checked here, after their barrier, against the permissions of now.

func (s *Server) recoverAuth() error {
	var err error
	s.be.Read(func(tx backend.ReadTx) { err = s.auth.Recover(tx) })
	if err != nil {
		return fmt.Errorf("recover auth store: %w", err)
	}
	return nil
}

// identify says who a call comes from, by the token in its metadata.
func (s *Server) identify(ctx context.Context) (context.Context, error) {
	var token string
	// One value, without copying the call's whole metadata.
	if ts := metadata.ValueFromIncomingContext(ctx, rpctypes.TokenFieldNameGRPC); len(ts) > 0 {
		token = ts[0]
	} else if ts := metadata.ValueFromIncomingContext(ctx, rpctypes.TokenFieldNameSwagger); len(ts) > 0 {
		// The HTTP gateway passes the Authorization header on under this
		// name; like etcd, take it bare or as a bearer token.
		token = strings.TrimPrefix(ts[0], "Bearer ")
	}
	if token == "" && s.cfg.ClientTLS.ClientCertAuth && s.auth.Enabled() {
		if user := certUser(ctx); user != "" {
			return auth.WithInfo(ctx, auth.Info{User: user, Revision: s.auth.Revision()}), nil
		}
	}
	info, err := s.auth.Identify(token)
	// Two answers may only mean that this member is behind: a simple
	// token given out by another member a moment ago may not have applied
	// here yet, and auth may have been turned on already. Let through as
	// nobody, a call of the second kind would be refused later for having
	// no user name rather than for its token (etcd identifies callers only
	// after the read barrier). Once everything committed before the call
	// has applied, the answer is final. Identify answers nobody for a
	// token only while auth is off.
	offHere := token != "" && err == nil && info == (auth.Info{})
	behind := errors.Is(err, auth.ErrInvalidAuthToken) || offHere
	if behind && s.caughtUp(ctx) {
		info, err = s.auth.Identify(token)
	}
	if err != nil {
		return ctx, apply.ToGRPC(err)
	}
	if info == (auth.Info{}) {
		return ctx, nil // nothing to carry: auth is off, or no token
	}
	return auth.WithInfo(ctx, info), nil
}

// certUser is, as in etcd, the common name of the verified client
// certificate of a call without a token, when --client-cert-auth is on.
// Calls relayed by the HTTP gateway come with the gateway's own
// certificate, whose name is nobody's: they are refused a user.
func certUser(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ""
	}
	if len(metadata.ValueFromIncomingContext(ctx, "grpcgateway-accept")) > 0 {
		return ""
	}
	for _, chain := range info.State.VerifiedChains {
		if len(chain) > 0 {
			return chain[0].Subject.CommonName
		}
	}
	return ""
}

// caughtUp waits, at most a request's timeout (a stream's own context has
// no deadline), until this member has applied everything committed.
func (s *Server) caughtUp(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	return s.reads.wait(ctx) == nil
}

// checkAdmin refuses a call whose user does not have the root role.
func (s *Server) checkAdmin(ctx context.Context) error {
	return apply.ToGRPC(s.auth.IsAdmin(auth.InfoFrom(ctx)))
}

// checkUser refuses a call without a user while auth is enabled.
func (s *Server) checkUser(ctx context.Context) error {
	return apply.ToGRPC(s.auth.RequireUser(auth.InfoFrom(ctx)))
}

// AuthEnable replicates turning auth on.
func (s *Server) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return proposeKV[*pb.AuthEnableResponse](ctx, s, &pb.InternalRaftRequest{AuthEnable: r})
}

// AuthDisable replicates turning auth off.
func (s *Server) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return proposeKV[*pb.AuthDisableResponse](ctx, s, &pb.InternalRaftRequest{AuthDisable: r})
}

// AuthStatus reports whether auth is enabled, and its revision.
func (s *Server) AuthStatus(ctx context.Context, _ *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	if err := s.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	return s.auth.Status(), nil
}

// Authenticate checks a user's password here, outside raft, and then
// replicates a new simple token for the user, so that every member knows
// it, or signs a JWT. A password checked against users that changed
// meanwhile is checked again.
func (s *Server) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	if !s.auth.TokensReplicated() {
		return s.authenticateSigned(ctx, r)
	}
	for {
		checked, err := s.auth.CheckPassword(r.Name, r.Password)
		if err != nil {
			return nil, apply.ToGRPC(err)
		}
		req := &pb.InternalAuthenticateRequest{Name: r.Name, SimpleToken: auth.NewToken(s.ids.id())}
		resp, err := proposeKV[*pb.AuthenticateResponse](ctx, s, &pb.InternalRaftRequest{Authenticate: req})
		if err != nil || checked == s.auth.Revision() {
			return resp, err
		}
	}
}

// authenticateSigned hands out a JWT with no raft round: any member can
// verify it alone. The read barrier first makes this member's users at
// least as new as any change acknowledged before the call, so a password
// just changed through another member is not accepted here; SignToken
// then refuses if the users changed while bcrypt ran, and the password is
// checked again.
func (s *Server) authenticateSigned(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	if err := s.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	for {
		checked, err := s.auth.CheckPassword(r.Name, r.Password)
		if err != nil {
			return nil, apply.ToGRPC(err)
		}
		token, err := s.auth.SignToken(r.Name, checked)
		switch {
		case errors.Is(err, auth.ErrAuthOldRevision):
			continue
		case err != nil:
			return nil, apply.ToGRPC(err)
		}
		return &pb.AuthenticateResponse{Header: &pb.ResponseHeader{}, Token: token}, nil
	}
}

// UserAdd hashes the password here, so that only its hash goes through
// raft, and replicates the new user.
func (s *Server) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	if r.Options == nil || !r.Options.NoPassword {
		h, err := s.auth.HashPassword(r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return proposeKV[*pb.AuthUserAddResponse](ctx, s, &pb.InternalRaftRequest{AuthUserAdd: r})
}

// UserChangePassword hashes the new password here and replicates it.
func (s *Server) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	h, err := s.auth.HashPassword(r.Password)
	if err != nil {
		return nil, err
	}
	r.HashedPassword, r.Password = h, ""
	return proposeKV[*pb.AuthUserChangePasswordResponse](ctx, s, &pb.InternalRaftRequest{AuthUserChangePassword: r})
}

// UserDelete replicates the removal of a user.
func (s *Server) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return proposeKV[*pb.AuthUserDeleteResponse](ctx, s, &pb.InternalRaftRequest{AuthUserDelete: r})
}

// UserGrantRole replicates giving a user a role.
func (s *Server) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return proposeKV[*pb.AuthUserGrantRoleResponse](ctx, s, &pb.InternalRaftRequest{AuthUserGrantRole: r})
}

// UserRevokeRole replicates taking a role from a user.
func (s *Server) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return proposeKV[*pb.AuthUserRevokeRoleResponse](ctx, s, &pb.InternalRaftRequest{AuthUserRevokeRole: r})
}

// RoleAdd replicates a new role.
func (s *Server) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return proposeKV[*pb.AuthRoleAddResponse](ctx, s, &pb.InternalRaftRequest{AuthRoleAdd: r})
}

// RoleDelete replicates the removal of a role.
func (s *Server) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return proposeKV[*pb.AuthRoleDeleteResponse](ctx, s, &pb.InternalRaftRequest{AuthRoleDelete: r})
}

// RoleGrantPermission replicates a permission given to a role.
func (s *Server) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return proposeKV[*pb.AuthRoleGrantPermissionResponse](ctx, s, &pb.InternalRaftRequest{AuthRoleGrantPermission: r})
}

// RoleRevokePermission replicates a permission taken from a role.
func (s *Server) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return proposeKV[*pb.AuthRoleRevokePermissionResponse](ctx, s, &pb.InternalRaftRequest{AuthRoleRevokePermission: r})
}

// UserGet describes a user, to root or to the user itself.
func (s *Server) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	if err := s.checkAdmin(ctx); err != nil && auth.InfoFrom(ctx).User != r.Name {
		return nil, err
	}
	if err := s.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	resp, err := s.auth.UserGet(r.Name)
	return resp, apply.ToGRPC(err)
}

// UserList lists users, to root.
func (s *Server) UserList(ctx context.Context, _ *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	if err := s.checkAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	return s.auth.UserList(), nil
}

// RoleGet describes a role, to root or to a user that has it.
func (s *Server) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	if err := s.checkAdmin(ctx); err != nil && !s.auth.HasRole(auth.InfoFrom(ctx).User, r.Role) {
		return nil, err
	}
	if err := s.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	resp, err := s.auth.RoleGet(r.Role)
	return resp, apply.ToGRPC(err)
}

// RoleList lists roles, to root.
func (s *Server) RoleList(ctx context.Context, _ *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	if err := s.checkAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	return s.auth.RoleList(), nil
}
