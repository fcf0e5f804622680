package concurrency

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/kvd-io/kvd/pkg/client"
)

// errWatchLost is returned when a watch ends without the event waited
// for, the server's reason or the caller's ctx ending.
var errWatchLost = errors.New("concurrency: watch ended while waiting for a key's deletion")

// waitDeletes returns once every key under pfx created at or before
// maxRev is gone. It waits for the newest such key first: the others are
// older, so by the time it is gone they usually are too, and each waiter
// watches one key rather than the whole queue (no herd when the holder
// leaves).
func waitDeletes(ctx context.Context, c *client.Client, pfx string, maxRev int64) error {
	for {
		r, err := c.Get(ctx, pfx, append(client.WithLastCreate(), client.WithMaxCreateRev(maxRev))...)
		if err != nil {
			return err
		}
		if len(r.Kvs) == 0 {
			return nil
		}
		if err := waitDelete(ctx, c, string(r.Kvs[0].Key), r.Header.Revision); err != nil {
			return err
		}
	}
}

// waitDelete watches key from rev, when it was seen, until it is deleted.
func waitDelete(ctx context.Context, c *client.Client, key string, rev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var last client.WatchResponse
	for wr := range c.Watch(wctx, key, client.WithRev(rev)) {
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.DELETE {
				return nil
			}
		}
		last = wr
	}
	if err := last.Err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errWatchLost
}
