package server

import (
	"fmt"

	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/membership"
)

// Members are kept in the database, written by the apply loop when a conf
// change applies, so a restarted member knows the cluster even after the
// WAL entries that formed it were truncated behind a snapshot.

func saveMember(be *backend.Backend, m *membership.Member) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return be.Write(func(tx backend.WriteTx) error { return tx.Put(backend.Members, membership.DBKey(m.ID), b) })
}

func deleteMember(be *backend.Backend, id uint64) error {
	return be.Write(func(tx backend.WriteTx) error { return tx.Delete(backend.Members, membership.DBKey(id)) })
}

func loadMembers(be *backend.Backend) ([]*membership.Member, error) {
	var (
		members []*membership.Member
		err     error
	)
	be.Read(func(tx backend.ReadTx) {
		tx.ForEach(backend.Members, nil, func(_, v []byte) bool {
			var m *membership.Member
			if m, err = membership.UnmarshalMember(v); err != nil {
				return false
			}
			members = append(members, m)
			return true
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load members: %w", err)
	}
	// None may be listed yet when the member crashed before the database
	// first committed: the conf changes that add them are then still in
	// the WAL above the consistent index, and replay adds them again.
	return members, nil
}
