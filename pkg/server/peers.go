package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"

	"github.com/kvd-io/kvd/pkg/server/membership"
	"github.com/kvd-io/kvd/pkg/server/raftnode"
)

// Members talk to each other over their peer URLs for more than raft: a
// joining member asks an existing one who is in the cluster, and a
// follower passes membership changes to the leader (forward.go).
const (
	membersPath = "/members"
	changePath  = "/members/change"
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
	mux.HandleFunc("POST "+changePath, s.serveChange)
	mux.HandleFunc("POST "+leasePath, s.serveLease)
	mux.HandleFunc("GET "+hashKVPath, s.serveHashKV)
	return mux
}

// fetchCluster asks the members at peerURLs, in turn, for the cluster they
// form: how a member started with --initial-cluster-state=existing learns
// its own ID and the cluster's.
func fetchCluster(ctx context.Context, client *http.Client, peerURLs []string) (uint64, []*membership.Member, error) {
	var info clusterInfo
	u, err := askPeers(ctx, client, http.MethodGet, peerURLs, membersPath, nil, &info)
	if err != nil {
		return 0, nil, fmt.Errorf("no existing member answered at %v: %w", peerURLs, err)
	}
	id, err := strconv.ParseUint(info.ClusterID, 16, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("%s sent cluster ID %q: %w", u, info.ClusterID, err)
	}
	return id, info.Members, nil
}

// decodePeerRequest reads a peer's JSON request into v, or answers 400
// naming what was expected and says false.
func decodePeerRequest(w http.ResponseWriter, r *http.Request, what string, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		http.Error(w, fmt.Sprintf("bad %s: %v", what, err), http.StatusBadRequest)
		return false
	}
	return true
}

// askPeers sends one request to the peer URLs of a member, in turn, until
// one answers 200 with a JSON document, which it decodes into out. It
// returns the URL that answered.
func askPeers(ctx context.Context, c *http.Client, method string, urls []string, path string, body []byte, out any) (string, error) {
	last := errors.New("no peer URL")
	for _, u := range urls {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, u+path, rd)
		if err != nil {
			return "", err
		}
		resp, err := c.Do(req)
		if err != nil {
			last = err
			continue
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			last = fmt.Errorf("%s answered %s (%v)", u, resp.Status, err)
			continue
		}
		return u, nil
	}
	return "", last
}

// publish tells the cluster this member's name and client URLs through
// raft, retrying until it is applied, so every member lists them.
func (s *Server) publish() {
	for {
		// A new request each time: an earlier attempt's may still be
		// read by the apply loop (see propose).
		req := &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
			Member_ID: s.cluster.LocalID(),
			MemberAttributes: &membershippb.Attributes{
				Name:       s.cfg.Name,
				ClientUrls: s.cfg.AdvertiseClientURLs,
			},
		}}
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
