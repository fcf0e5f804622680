package apply

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/lease"
)

// authorize checks, as the entry applies, that the user the proposing
// member named in its header may make request r: every member decides
// alike, with the permissions of the entry's place in the log.
func authorize(as *auth.Store, leases *lease.Lessor, r *pb.InternalRaftRequest) error {
	if as == nil || !as.Enabled() {
		return nil
	}
	info := auth.Info{User: r.GetHeader().GetUsername(), Revision: r.GetHeader().GetAuthRevision()}
	switch {
	case isAdminRequest(r):
		return as.IsAdmin(info)
	case r.Compaction != nil:
		// Compaction destroys history every user reads from: root's
		// alone, where etcd lets anyone, even a caller with no user.
		return as.IsAdmin(info)
	case r.Put != nil:
		return canPut(as, leases, info, r.Put)
	case r.DeleteRange != nil:
		return canDelete(as, info, r.DeleteRange)
	case r.Txn != nil:
		return canTxn(as, leases, info, r.Txn)
	case r.LeaseRevoke != nil:
		return canRevoke(as, leases, info, r.LeaseRevoke.ID)
	case r.LeaseGrant != nil:
		return as.RequireUser(info)
	}
	return nil
}

func isAdminRequest(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil || r.AuthUserAdd != nil || r.AuthUserDelete != nil ||
		r.AuthUserChangePassword != nil || r.AuthUserGrantRole != nil || r.AuthUserRevokeRole != nil ||
		r.AuthRoleAdd != nil || r.AuthRoleGrantPermission != nil || r.AuthRoleRevokePermission != nil ||
		r.AuthRoleDelete != nil
}

// canPut needs write on the key, read too for prev_kv, and, for a put
// with a lease, write on the lease's keys: whoever may attach a key to a
// lease may end it, and so delete those keys.
func canPut(as *auth.Store, leases *lease.Lessor, info auth.Info, r *pb.PutRequest) error {
	if err := as.CanWrite(info, r.Key, nil); err != nil {
		return err
	}
	if r.Lease != 0 {
		if err := canRevoke(as, leases, info, r.Lease); err != nil {
			return err
		}
	}
	if r.PrevKv {
		return as.CanRead(info, r.Key, nil)
	}
	return nil
}

func canDelete(as *auth.Store, info auth.Info, r *pb.DeleteRangeRequest) error {
	if err := as.CanWrite(info, r.Key, r.RangeEnd); err != nil {
		return err
	}
	if r.PrevKv {
		return as.CanRead(info, r.Key, r.RangeEnd)
	}
	return nil
}

// canTxn needs read on every compare and every op of both branches, as
// a txn must not tell by its branch what its user may not read.
func canTxn(as *auth.Store, leases *lease.Lessor, info auth.Info, r *pb.TxnRequest) error {
	for _, c := range r.Compare {
		if err := as.CanRead(info, c.Key, c.RangeEnd); err != nil {
			return err
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			var err error
			switch v := op.Request.(type) {
			case *pb.RequestOp_RequestRange:
				err = as.CanRead(info, v.RequestRange.GetKey(), v.RequestRange.GetRangeEnd())
			case *pb.RequestOp_RequestPut:
				err = canPut(as, leases, info, v.RequestPut)
			case *pb.RequestOp_RequestDeleteRange:
				err = canDelete(as, info, v.RequestDeleteRange)
			case *pb.RequestOp_RequestTxn:
				err = canTxn(as, leases, info, v.RequestTxn)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// canRevoke needs write on every key attached to the lease, unless the
// user is root.
func canRevoke(as *auth.Store, leases *lease.Lessor, info auth.Info, id int64) error {
	if err := as.RequireUser(info); err != nil {
		return err
	}
	if as.IsAdmin(info) == nil {
		return nil
	}
	for _, k := range leases.Keys(id) {
		if err := as.CanWrite(info, []byte(k), nil); err != nil {
			return err
		}
	}
	return nil
}

// CheckReadTxn is canTxn for a txn served locally, which only reads.
func CheckReadTxn(as *auth.Store, info auth.Info, r *pb.TxnRequest) error {
	return canTxn(as, nil, info, r)
}

// applyAuth applies an auth change to the auth store.
func (w writer) applyAuth(as *auth.Store, r *pb.InternalRaftRequest) (resp proto.Message, handled bool, err error) {
	hdr := func() *pb.ResponseHeader { return hdr(w.t.Rev()) }
	switch {
	case r.AuthEnable != nil:
		return &pb.AuthEnableResponse{Header: hdr()}, true, as.Enable(w.t)
	case r.AuthDisable != nil:
		as.Disable(w.t)
		return &pb.AuthDisableResponse{Header: hdr()}, true, nil
	case r.AuthUserAdd != nil:
		return &pb.AuthUserAddResponse{Header: hdr()}, true, as.UserAdd(w.t, r.AuthUserAdd)
	case r.AuthUserDelete != nil:
		return &pb.AuthUserDeleteResponse{Header: hdr()}, true, as.UserDelete(w.t, r.AuthUserDelete.Name)
	case r.AuthUserChangePassword != nil:
		return &pb.AuthUserChangePasswordResponse{Header: hdr()}, true, as.UserChangePassword(w.t, r.AuthUserChangePassword)
	case r.AuthUserGrantRole != nil:
		return &pb.AuthUserGrantRoleResponse{Header: hdr()}, true, as.UserGrantRole(w.t, r.AuthUserGrantRole.User, r.AuthUserGrantRole.Role)
	case r.AuthUserRevokeRole != nil:
		return &pb.AuthUserRevokeRoleResponse{Header: hdr()}, true, as.UserRevokeRole(w.t, r.AuthUserRevokeRole.Name, r.AuthUserRevokeRole.Role)
	case r.AuthRoleAdd != nil:
		return &pb.AuthRoleAddResponse{Header: hdr()}, true, as.RoleAdd(w.t, r.AuthRoleAdd.Name)
	case r.AuthRoleDelete != nil:
		return &pb.AuthRoleDeleteResponse{Header: hdr()}, true, as.RoleDelete(w.t, r.AuthRoleDelete.Role)
	case r.AuthRoleGrantPermission != nil:
		return &pb.AuthRoleGrantPermissionResponse{Header: hdr()}, true, as.RoleGrantPermission(w.t, r.AuthRoleGrantPermission.Name, r.AuthRoleGrantPermission.Perm)
	case r.AuthRoleRevokePermission != nil:
		rp := r.AuthRoleRevokePermission
		return &pb.AuthRoleRevokePermissionResponse{Header: hdr()}, true, as.RoleRevokePermission(w.t, rp.Role, rp.Key, rp.RangeEnd)
	case r.Authenticate != nil:
		return &pb.AuthenticateResponse{Header: hdr(), Token: r.Authenticate.SimpleToken}, true, as.Authenticate(r.Authenticate.Name, r.Authenticate.SimpleToken)
	}
	return nil, false, nil
}
