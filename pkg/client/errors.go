package client

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failed call's gRPC status as the server sent it. When the
// status carries one of etcd's messages it also reads as etcd's error
// value, so both status.Code(err) and errors.Is(err, rpctypes.ErrCompacted)
// work, and Error() is etcd's text ("etcdserver: mvcc: required revision
// has been compacted").
type Error struct {
	status *status.Status
	etcd   error // an rpctypes.EtcdError, or nil for other statuses
}

// Error is etcd's message when there is one, gRPC's otherwise.
func (e *Error) Error() string {
	if e.etcd != nil {
		return e.etcd.Error()
	}
	return e.status.Err().Error()
}

// GRPCStatus is the status as received.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// Unwrap is etcd's error value, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.etcd }

// toErr shapes an error from a call on ctx: the context's own error when
// the call ended because ctx did, an *Error for any other status.
func toErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if c := st.Code(); (c == codes.DeadlineExceeded || c == codes.Canceled) && ctx.Err() != nil {
		return ctx.Err()
	}
	e := &Error{status: st}
	var etcdErr rpctypes.EtcdError
	if errors.As(rpctypes.Error(err), &etcdErr) {
		e.etcd = etcdErr
	}
	return e
}
