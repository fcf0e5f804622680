package api

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// Auth is what the Auth service needs from a member: one call per RPC,
// each answering with its response whose header the service fills.
type Auth interface {
	AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error)
	AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error)
	AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error)
	Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error)
	UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error)
	UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error)
	UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error)
	UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error)
	UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error)
	UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error)
	UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error)
	RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error)
	RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error)
	RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error)
	RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error)
	RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error)
	RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error)
}

// authService serves the Auth RPCs: each asks the member, then fills the
// response header.
type authService struct {
	pb.UnimplementedAuthServer
	a   Auth
	hdr Header
}

// headered is every Auth response: each has a header to fill.
type headered interface{ GetHeader() *pb.ResponseHeader }

func answer[R headered](h Header, resp R, err error) (R, error) {
	var zero R
	if err != nil {
		return zero, toStatus(err)
	}
	if rh := resp.GetHeader(); rh != nil {
		fillHeader(h, rh, true)
	}
	return resp, nil
}

func (s *authService) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	resp, err := s.a.AuthEnable(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	resp, err := s.a.AuthDisable(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	resp, err := s.a.AuthStatus(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	resp, err := s.a.Authenticate(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	resp, err := s.a.UserAdd(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	resp, err := s.a.UserGet(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	resp, err := s.a.UserList(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	resp, err := s.a.UserDelete(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	resp, err := s.a.UserChangePassword(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	resp, err := s.a.UserGrantRole(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	resp, err := s.a.UserRevokeRole(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	resp, err := s.a.RoleAdd(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	resp, err := s.a.RoleGet(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	resp, err := s.a.RoleList(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	resp, err := s.a.RoleDelete(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	resp, err := s.a.RoleGrantPermission(ctx, r)
	return answer(s.hdr, resp, err)
}

func (s *authService) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	resp, err := s.a.RoleRevokePermission(ctx, r)
	return answer(s.hdr, resp, err)
}

// identifier puts who each call comes from into its context, from the
// call's token, before any handler runs. Authenticate needs no token: it
// is how a client gets one.
type identifier func(ctx context.Context) (context.Context, error)

const authenticateMethod = "/etcdserverpb.Auth/Authenticate"

func (id identifier) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if info.FullMethod == authenticateMethod {
		return next(ctx, req)
	}
	ctx, err := id(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return next(ctx, req)
}

const watchMethod = "/etcdserverpb.Watch/Watch"

func (id identifier) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	ctx, err := id(ss.Context())
	if err != nil {
		if info.FullMethod != watchMethod {
			return toStatus(err)
		}
		// As etcd's, a watch stream with a bad token stays open and each
		// watch it asks for is refused with the reason, which tells
		// clientv3 to log in again and ask anew; ending the stream would
		// end its watches for good.
		ctx = context.WithValue(ss.Context(), identifyErrKey{}, toStatus(err))
	}
	return next(srv, identifiedStream{ss, ctx})
}

type identifyErrKey struct{}

// IdentifyError is why a watch stream's token was refused, or nil.
func IdentifyError(ctx context.Context) error {
	err, _ := ctx.Value(identifyErrKey{}).(error)
	return err
}

// identifiedStream is a stream whose context says who it comes from.
type identifiedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s identifiedStream) Context() context.Context { return s.ctx }
