package client

import (
	"context"
	"errors"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// tokenAuth holds the auth token sent with every call. It is gRPC
// per-call credentials, so every connection the client opens carries it.
type tokenAuth struct {
	user, password string

	mu    sync.RWMutex
	token string
}

func newTokenAuth(cfg Config) *tokenAuth {
	a := &tokenAuth{token: cfg.Token}
	if cfg.Username != "" && cfg.Password != "" {
		a.user, a.password = cfg.Username, cfg.Password
	}
	return a
}

// GetRequestMetadata adds the token, as etcd expects it, when there is one.
func (a *tokenAuth) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.token == "" {
		return nil, nil
	}
	return map[string]string{rpctypes.TokenFieldNameGRPC: a.token}, nil
}

// RequireTransportSecurity is false: etcd accepts tokens over plain text,
// and refusing would make auth unusable on insecure clusters.
func (a *tokenAuth) RequireTransportSecurity() bool { return false }

func (a *tokenAuth) needsLogin() bool { return a.user != "" }

// shouldRefresh says err means the token expired or went stale, so a new
// one may make the same call succeed. The server refused the call before
// doing anything, so repeating even a write is safe. A call sent without
// a token (the client logged in while auth was off, and it was switched
// on since) is refused as coming from no user: logging in now gets one.
func (a *tokenAuth) shouldRefresh(err error) bool {
	if !a.needsLogin() {
		return false
	}
	err = rpctypes.Error(err)
	return errors.Is(err, rpctypes.ErrInvalidAuthToken) || errors.Is(err, rpctypes.ErrAuthOldRevision) ||
		errors.Is(err, rpctypes.ErrUserEmpty)
}

// refresh logs in again. A server without auth enabled answers with
// ErrAuthNotEnabled, which leaves the client without a token.
func (a *tokenAuth) refresh(ctx context.Context, conn *grpc.ClientConn) error {
	a.mu.Lock()
	a.token = "" // a stale token must not ride along on the login itself
	a.mu.Unlock()
	resp, err := pb.NewAuthClient(conn).Authenticate(ctx, &pb.AuthenticateRequest{Name: a.user, Password: a.password})
	if err != nil {
		if errors.Is(rpctypes.Error(err), rpctypes.ErrAuthNotEnabled) {
			return nil
		}
		return toErr(ctx, err)
	}
	a.mu.Lock()
	a.token = resp.Token
	a.mu.Unlock()
	return nil
}
