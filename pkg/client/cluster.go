package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Cluster reads and changes the cluster's membership. Changes are not
// idempotent (an add that reached the server but whose answer was lost
// would add a second member if repeated), so they are sent once and never
// retried; only MemberList is.
type Cluster interface {
	// MemberList lists the members. It is linearizable, answered through
	// the leader, unless WithSerializable is given.
	MemberList(ctx context.Context, opts ...OpOption) (*pb.MemberListResponse, error)
	// MemberAdd adds a voting member that will listen on peerURLs. It
	// counts towards the quorum from the moment it is added, started or
	// not.
	MemberAdd(ctx context.Context, peerURLs []string) (*pb.MemberAddResponse, error)
	// MemberAddAsLearner adds a non-voting member, which receives the log
	// but does not count towards the quorum until promoted.
	MemberAddAsLearner(ctx context.Context, peerURLs []string) (*pb.MemberAddResponse, error)
	// MemberRemove removes the member with the given ID.
	MemberRemove(ctx context.Context, id uint64) (*pb.MemberRemoveResponse, error)
	// MemberUpdate replaces the peer URLs of the member with the given ID.
	MemberUpdate(ctx context.Context, id uint64, peerURLs []string) (*pb.MemberUpdateResponse, error)
	// MemberPromote turns a learner that has caught up with the leader
	// into a voting member.
	MemberPromote(ctx context.Context, id uint64) (*pb.MemberPromoteResponse, error)
}

type cluster struct{ remote pb.ClusterClient }

func (c *cluster) MemberList(ctx context.Context, opts ...OpOption) (*pb.MemberListResponse, error) {
	op := newOp(opGet, "", "", opts)
	resp, err := c.remote.MemberList(ctx, &pb.MemberListRequest{Linearizable: !op.serializable})
	return resp, toErr(ctx, err)
}

func (c *cluster) MemberAdd(ctx context.Context, peerURLs []string) (*pb.MemberAddResponse, error) {
	return c.add(ctx, peerURLs, false)
}

func (c *cluster) MemberAddAsLearner(ctx context.Context, peerURLs []string) (*pb.MemberAddResponse, error) {
	return c.add(ctx, peerURLs, true)
}

func (c *cluster) add(ctx context.Context, peerURLs []string, learner bool) (*pb.MemberAddResponse, error) {
	if err := checkPeerURLs(peerURLs); err != nil {
		return nil, err
	}
	resp, err := c.remote.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: peerURLs, IsLearner: learner})
	if err != nil {
		return nil, toErr(ctx, err)
	}
	return resp, nil
}

func (c *cluster) MemberRemove(ctx context.Context, id uint64) (*pb.MemberRemoveResponse, error) {
	resp, err := c.remote.MemberRemove(ctx, &pb.MemberRemoveRequest{ID: id})
	if err != nil {
		return nil, toErr(ctx, err)
	}
	return resp, nil
}

func (c *cluster) MemberUpdate(ctx context.Context, id uint64, peerURLs []string) (*pb.MemberUpdateResponse, error) {
	if err := checkPeerURLs(peerURLs); err != nil {
		return nil, err
	}
	resp, err := c.remote.MemberUpdate(ctx, &pb.MemberUpdateRequest{ID: id, PeerURLs: peerURLs})
	if err != nil {
		return nil, toErr(ctx, err)
	}
	return resp, nil
}

func (c *cluster) MemberPromote(ctx context.Context, id uint64) (*pb.MemberPromoteResponse, error) {
	resp, err := c.remote.MemberPromote(ctx, &pb.MemberPromoteRequest{ID: id})
	if err != nil {
		return nil, toErr(ctx, err)
	}
	return resp, nil
}

// checkPeerURLs refuses, before anything is sent, peer URLs that no
// member could listen on, with the messages etcd's client gives: an
// http(s) URL needs a host and port and no path; unix(s) URLs are taken
// as they are.
func checkPeerURLs(urls []string) error {
	if len(urls) == 0 {
		return errors.New("no valid URLs given")
	}
	for _, s := range urls {
		s = strings.TrimSpace(s)
		u, err := url.Parse(s)
		if err != nil {
			return err
		}
		switch u.Scheme {
		case "http", "https":
			if _, _, err := net.SplitHostPort(u.Host); err != nil {
				return fmt.Errorf(`URL address does not have the form "host:port": %s`, s)
			}
			if u.Path != "" {
				return fmt.Errorf("URL must not contain a path: %s", s)
			}
		case "unix", "unixs":
		default:
			return fmt.Errorf("URL scheme must be http, https, unix, or unixs: %s", s)
		}
	}
	return nil
}
