package client

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Cluster reads the member list.
type Cluster interface {
	MemberList(ctx context.Context) (*pb.MemberListResponse, error)
}

type cluster struct{ remote pb.ClusterClient }

// MemberList asks for a linearizable member list, as etcd's client does.
func (c *cluster) MemberList(ctx context.Context) (*pb.MemberListResponse, error) {
	resp, err := c.remote.MemberList(ctx, &pb.MemberListRequest{Linearizable: true})
	return resp, Err(err)
}

// Maintenance asks one endpoint about itself.
type Maintenance interface {
	Status(ctx context.Context, endpoint string) (*pb.StatusResponse, error)
	// Alarms lists the cluster's active alarms.
	Alarms(ctx context.Context) ([]*pb.AlarmMember, error)
}

type maintenance struct{ c *Client }

// Status dials endpoint alone, since the answer is about that member.
func (m *maintenance) Status(ctx context.Context, endpoint string) (*pb.StatusResponse, error) {
	conn, err := grpc.NewClient(Host(endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", endpoint, err)
	}
	defer conn.Close()
	resp, err := pb.NewMaintenanceClient(conn).Status(ctx, &pb.StatusRequest{})
	return resp, Err(err)
}

func (m *maintenance) Alarms(ctx context.Context) ([]*pb.AlarmMember, error) {
	resp, err := pb.NewMaintenanceClient(m.c.conn).Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	if err != nil {
		return nil, Err(err)
	}
	return resp.Alarms, nil
}
