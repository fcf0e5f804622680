package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	kvd "github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/tests/framework"
)

// TestClientAutoSync: a client given one member learns the others from
// the member list and keeps reading and writing when that member dies.
func TestClientAutoSync(t *testing.T) {
	ms := framework.StartKvdCluster(t, 3)
	c, err := kvd.New(kvd.Config{
		Endpoints:        []string{ms[0].Endpoint},
		DialTimeout:      2 * time.Second,
		AutoSyncInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eventually(t, 10*time.Second, "the client syncs every member's endpoint", func() error {
		if eps := c.Endpoints(); len(eps) != 3 {
			return fmt.Errorf("endpoints %v", eps)
		}
		return nil
	})
	ms[0].Kill()
	for i := range 10 {
		eventually(t, 15*time.Second, "write after the first endpoint died", func() error {
			_, err := c.Put(ctx, fmt.Sprintf("k%d", i), "v")
			return err
		})
	}
	resp, err := c.Get(ctx, "k", kvd.WithPrefix())
	if err != nil || resp.Count != 10 {
		t.Fatalf("read after fail-over: %v %v", resp, err)
	}
}
