package robustness

import "slices"

// stepLease is step for the lease requests.
//
// A grant changes neither keys nor revision; its response reports the
// current revision and a lease ID no live lease has. A revoke of a live
// lease deletes every key attached to it at the next revision (or
// changes nothing, not even the revision, when it has none); a revoke or
// keep-alive of a lease that does not exist is refused. A keep-alive
// renews a live lease and changes nothing else.
func stepLease(s *State, in Input, out Output) (bool, *State) {
	failed := out.Err != ""
	switch in.Kind {
	case OpGrant:
		if failed {
			// Failed grants are dropped before checking: the workload
			// never uses a lease whose grant it did not see.
			return true, s
		}
		if out.LeaseID == 0 || s.hasLease(out.LeaseID) || out.Revision != s.Revision {
			return false, s
		}
		leases := append(slices.Clone(s.Leases), out.LeaseID)
		slices.Sort(leases)
		return true, newState(s.Revision, s.Compacted, s.Keys, leases)
	case OpRevoke:
		if !s.hasLease(in.LeaseID) {
			return failed || out.LeaseErr == LeaseNotFound, s
		}
		var dels []TxnOp
		for _, k := range s.Keys {
			if k.Lease == in.LeaseID {
				dels = append(dels, TxnOp{Kind: OpDelete, Key: k.Key})
			}
		}
		next, _ := s.write(dels)
		leases := slices.DeleteFunc(slices.Clone(next.Leases), func(id int64) bool { return id == in.LeaseID })
		next = newState(next.Revision, next.Compacted, next.Keys, leases)
		return failed || (out.LeaseErr == "" && out.Revision == next.Revision), next
	case OpKeepAlive:
		if s.hasLease(in.LeaseID) {
			return failed || out.Succeeded, s
		}
		return failed || out.LeaseErr == LeaseNotFound, s
	}
	return false, s
}
