package robustness

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The cluster runs with auth enabled. The workload's clients and the
// watchers are the user "worker", whose role may read and write the
// workload's keys and nothing else, so every request is checked against a
// user's permissions as it applies, its token travels between members
// through raft and is lost when they all crash (the clients then log in
// again). Compactions and the harness's own questions are root's, as kvd
// allows only root to compact.
const (
	rootUser   = "root"
	workerUser = "worker"
	password   = "robustness"
)

// clientAs is a client of eps logged in as user.
func clientAs(eps []string, user string, dialTimeout time.Duration) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints: eps, DialTimeout: dialTimeout, Logger: zap.NewNop(),
		Username: user, Password: password,
	})
}

// enableAuth makes root and worker, and turns auth on.
func enableAuth(ctx context.Context, eps []string) error {
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	steps := []func() error{
		func() error { _, err := c.RoleAdd(ctx, rootUser); return err },
		func() error { _, err := c.UserAdd(ctx, rootUser, password); return err },
		func() error { _, err := c.UserGrantRole(ctx, rootUser, rootUser); return err },
		func() error { _, err := c.RoleAdd(ctx, workerUser); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, workerUser, rangeStart, rangeEnd, clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := c.UserAdd(ctx, workerUser, password); return err },
		func() error { _, err := c.UserGrantRole(ctx, workerUser, workerUser); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	}
	for i, st := range steps {
		if err := st(); err != nil {
			return fmt.Errorf("enable auth, step %d: %w", i+1, err)
		}
	}
	return nil
}
