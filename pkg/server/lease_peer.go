package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/lease"
)

// A follower passes lease renewals and TTL questions to the leader over
// the peer URLs, as it does membership changes.

const leasePath = "/lease"

const (
	opRenew      = "renew"
	opTimeToLive = "ttl"
)

type leaseQuestion struct {
	Op   string `json:"op"`
	ID   int64  `json:"id"`
	Keys bool   `json:"keys,omitempty"`
}

type leaseAnswer struct {
	TTL        int64    `json:"ttl"`
	GrantedTTL int64    `json:"grantedTTL,omitempty"`
	Keys       [][]byte `json:"keys,omitempty"`
	// Error is etcd's description of the error, or one of the lessor's
	// that tells the follower to ask again.
	Error string `json:"error,omitempty"`
}

func (s *Server) serveLease(w http.ResponseWriter, r *http.Request) {
	var q leaseQuestion
	if !decodePeerRequest(w, r, "lease question", &q) {
		return
	}
	var ans leaseAnswer
	var err error
	switch {
	case !s.isLeader():
		// Passing it on again could loop while leadership moves.
		err = rpctypes.ErrGRPCNotLeader
	case q.Op == opRenew:
		ans.TTL, err = s.renewHere(r.Context(), q.ID)
	case q.Op == opTimeToLive:
		var st lease.Status
		st, err = s.lessor.TimeToLive(q.ID, q.Keys)
		ans.TTL, ans.GrantedTTL = st.TTL, st.GrantedTTL
		for _, k := range st.Keys {
			ans.Keys = append(ans.Keys, []byte(k))
		}
	default:
		http.Error(w, fmt.Sprintf("unknown lease question %q", q.Op), http.StatusBadRequest)
		return
	}
	switch {
	case err == nil:
	case errors.Is(err, lease.ErrNotPrimary):
		ans.Error = err.Error()
	default:
		ans.Error = rpctypes.ErrorDesc(apply.ToGRPC(err))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

// askLeaseLeader puts q to the leader at peerURLs. A leader that cannot
// be reached answers errNoLeaseLeader, to be asked again.
func (s *Server) askLeaseLeader(ctx context.Context, peerURLs []string, q leaseQuestion) (leaseAnswer, error) {
	body, err := json.Marshal(q)
	if err != nil {
		return leaseAnswer{}, err
	}
	var ans leaseAnswer
	// The peer transport keeps connections to the leader open: a
	// keep-alive stream on a follower sends one renewal after another.
	if _, err := askPeers(ctx, s.peerClient(0), http.MethodPost, peerURLs, leasePath, body, &ans); err != nil {
		return leaseAnswer{}, fmt.Errorf("%w: %v", errNoLeaseLeader, err)
	}
	switch {
	case ans.Error == "":
		return ans, nil
	case ans.Error == lease.ErrNotPrimary.Error():
		return ans, lease.ErrNotPrimary
	case forwarded[ans.Error] != nil:
		return ans, forwarded[ans.Error]
	}
	return ans, fmt.Errorf("leader: %s", ans.Error)
}
