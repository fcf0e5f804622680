package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kvd-io/kvd/pkg/server/membership"
	"github.com/kvd-io/kvd/pkg/server/raftnode"
)

// Members talk to each other over their peer URLs for more than raft: a
// joining member asks an existing one who is in the cluster, and a
// follower passes learner promotions to the leader.
const (
	membersPath = "/members"
	promotePath = "/members/promote/"
)

var errMemberRemoved = errors.New("the member has been permanently removed from the cluster")

// clusterInfo is what membersPath answers.
type clusterInfo struct {
	ClusterID string               `json:"clusterID"`
	Members   []*membership.Member `json:"members"`
}

func (s *Server) peerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(raftnode.RaftPath, s.transport)
	mux.Handle(raftnode.SnapshotPath, s.transport)
	mux.HandleFunc("GET "+membersPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(clusterInfo{
			ClusterID: strconv.FormatUint(s.cluster.ID(), 16),
			Members:   s.cluster.Members(),
		})
	})
	mux.HandleFunc("POST "+promotePath+"{id}", s.servePromote)
	return mux
}

func (s *Server) servePromote(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 16, 64)
	if err != nil {
		http.Error(w, "bad member ID", http.StatusBadRequest)
		return
	}
	if s.node.Leader() != s.cluster.LocalID() {
		http.Error(w, rpctypes.ErrorDesc(rpctypes.ErrGRPCNotLeader), http.StatusPreconditionFailed)
		return
	}
	if err := s.MemberPromote(r.Context(), id); err != nil {
		http.Error(w, rpctypes.ErrorDesc(err), http.StatusPreconditionFailed)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// promoteErrors turns the leader's answer back into the error a client
// would have had from the leader itself.
var promoteErrors = map[string]error{}

func init() {
	for _, err := range []error{
		rpctypes.ErrGRPCLearnerNotReady, rpctypes.ErrGRPCMemberNotLearner, rpctypes.ErrGRPCMemberNotFound,
		rpctypes.ErrGRPCMemberNotEnoughStarted, rpctypes.ErrGRPCNotLeader, rpctypes.ErrGRPCTimeout,
		rpctypes.ErrGRPCNoLeader, rpctypes.ErrGRPCStopped,
	} {
		promoteErrors[rpctypes.ErrorDesc(err)] = err
	}
}

func (s *Server) forwardPromote(ctx context.Context, id uint64) error {
	leader := s.cluster.Member(s.node.Leader())
	if leader == nil {
		return rpctypes.ErrGRPCNoLeader
	}
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	var last error
	for _, u := range leader.PeerURLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+promotePath+strconv.FormatUint(id, 16), nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode == http.StatusNoContent {
			return nil
		}
		if known, ok := promoteErrors[strings.TrimSpace(string(body))]; ok {
			return known
		}
		last = fmt.Errorf("leader at %s answered %s: %s", u, resp.Status, body)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return rpctypes.ErrGRPCTimeout
	}
	return fmt.Errorf("forward promotion to the leader: %w", last)
}

// fetchCluster asks the members at peerURLs, in turn, for the cluster they
// form: how a member started with --initial-cluster-state=existing learns
// its own ID and the cluster's.
func fetchCluster(ctx context.Context, peerURLs []string) (uint64, []*membership.Member, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for _, u := range peerURLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+membersPath, nil)
		if err != nil {
			return 0, nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		var info clusterInfo
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			last = fmt.Errorf("%s answered %s (%v)", u, resp.Status, err)
			continue
		}
		id, err := strconv.ParseUint(info.ClusterID, 16, 64)
		if err != nil {
			last = fmt.Errorf("%s sent cluster ID %q: %w", u, info.ClusterID, err)
			continue
		}
		return id, info.Members, nil
	}
	return 0, nil, fmt.Errorf("no existing member answered at %v: %w", peerURLs, last)
}

// publish tells the cluster this member's name and client URLs through
// raft, retrying until it is applied, so every member lists them.
func (s *Server) publish() {
	req := &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID: s.cluster.LocalID(),
		MemberAttributes: &membershippb.Attributes{
			Name:       s.cfg.Name,
			ClientUrls: s.cfg.AdvertiseClientURLs,
		},
	}}
	for {
		// propose gives up by itself when the member stops.
		ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout())
		res, err := s.propose(ctx, req)
		cancel()
		if err == nil {
			err = res.Err
		}
		if err == nil {
			s.lg.Info("published member attributes", "name", s.cfg.Name, "client-urls", s.cfg.AdvertiseClientURLs)
			return
		}
		s.lg.Debug("publish member attributes", "err", err)
		select {
		case <-s.stopc:
			return
		case <-time.After(time.Second):
		}
	}
}
