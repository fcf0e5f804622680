package concurrency_test

import (
	"context"
	"testing"

	"github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/pkg/client/concurrency"
)

// testSessionOptions: the session's lease has the TTL asked for (60 s by
// default), or is the lease given.
func testSessionOptions(t *testing.T, e *env) {
	c := e.client(t)
	ctx := testCtx(t)
	existing, err := c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    []concurrency.SessionOption
		granted int64
		lease   client.LeaseID
	}{
		{"default", nil, 60, 0},
		{"ttl", []concurrency.SessionOption{concurrency.WithTTL(7)}, 7, 0},
		{"non-positive ttl", []concurrency.SessionOption{concurrency.WithTTL(0)}, 60, 0},
		{"existing lease", []concurrency.SessionOption{concurrency.WithLease(existing.ID)}, 30, existing.ID},
		{"context", []concurrency.SessionOption{concurrency.WithContext(ctx)}, 60, 0},
	}
	for _, tt := range tests {
		s := newSession(t, c, tt.opts...)
		r, err := c.TimeToLive(ctx, s.Lease())
		if err != nil {
			t.Fatal(err)
		}
		if r.GrantedTTL != tt.granted || r.TTL <= 0 || tt.lease != 0 && s.Lease() != tt.lease {
			t.Errorf("%s: lease %x: %v", tt.name, s.Lease(), r)
		}
		if s.Client() != c || s.Ctx().Err() != nil {
			t.Errorf("%s: client or context wrong", tt.name)
		}
	}
}

// testSessionEnds: each way a session can end closes Done and Ctx; only
// Close and an external revoke remove the lease.
func testSessionEnds(t *testing.T, e *env) {
	admin := e.client(t)
	tests := []struct {
		name    string
		end     func(*concurrency.Session, *client.Client, context.CancelFunc)
		revoked bool
	}{
		{"Close", func(s *concurrency.Session, _ *client.Client, _ context.CancelFunc) {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		}, true},
		{"Orphan", func(s *concurrency.Session, _ *client.Client, _ context.CancelFunc) { s.Orphan() }, false},
		{"context ends", func(_ *concurrency.Session, _ *client.Client, cancel context.CancelFunc) { cancel() }, false},
		{"client closes", func(_ *concurrency.Session, c *client.Client, _ context.CancelFunc) { c.Close() }, false},
		{"lease revoked", func(s *concurrency.Session, _ *client.Client, _ context.CancelFunc) {
			if _, err := admin.Revoke(testCtx(t), s.Lease()); err != nil {
				t.Error(err)
			}
		}, true},
	}
	for _, tt := range tests {
		c := e.client(t)
		ctx, cancel := context.WithCancel(context.Background())
		// A short TTL: a revoked lease is noticed at the next renewal.
		s := newSession(t, c, concurrency.WithTTL(2), concurrency.WithContext(ctx))
		tt.end(s, c, cancel)
		waitDone(t, s.Done(), tt.name)
		if s.Ctx().Err() == nil {
			t.Errorf("%s: session context not done", tt.name)
		}
		r, err := admin.TimeToLive(testCtx(t), s.Lease())
		if err != nil {
			t.Fatal(err)
		}
		if gone := r.TTL == -1; gone != tt.revoked {
			t.Errorf("%s: lease TTL %d, want revoked %v", tt.name, r.TTL, tt.revoked)
		}
		cancel()
	}
}
