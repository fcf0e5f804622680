package client

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Sync replaces the client's endpoints with the client URLs of the
// cluster's started voting members, read linearizably from the member
// list. Learners are left out: they cannot serve most requests.
func (c *Client) Sync(ctx context.Context) error {
	resp, err := c.MemberList(ctx)
	if err != nil {
		return err
	}
	var eps []string
	for _, m := range resp.Members {
		if m.Name != "" && !m.IsLearner {
			eps = append(eps, m.ClientURLs...)
		}
	}
	if len(eps) == 0 {
		return errors.New("client: the member list names no started voting member")
	}
	slices.Sort(eps)
	if cur := slices.Sorted(slices.Values(c.Endpoints())); slices.Equal(cur, eps) {
		return nil
	}
	c.log.Info("endpoints synced from the member list", "endpoints", eps)
	return c.SetEndpoints(eps...)
}

// autoSync runs Sync every interval until the client is closed. A failed
// sync keeps the endpoints the client has.
func (c *Client) autoSync(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		if err := c.Sync(ctx); err != nil && c.ctx.Err() == nil {
			c.log.Debug("sync endpoints", "err", err)
		}
		cancel()
	}
}
