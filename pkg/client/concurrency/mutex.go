package concurrency

import (
	"context"
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kvd-io/kvd/pkg/client"
)

// The errors a Mutex reports, with the texts of etcd's.
var (
	// ErrLocked is TryLock's answer when another session holds the lock.
	ErrLocked = errors.New("mutex: Locked by another session")
	// ErrSessionExpired is Lock's answer when the session's key vanished
	// while it waited: its lease expired or was revoked.
	ErrSessionExpired = errors.New("mutex: session is expired")
	// ErrLockReleased is Unlock's answer when the lock is not held.
	ErrLockReleased = errors.New("mutex: lock has already been released")
)

// Mutex is a lock shared through a cluster. Each contender writes the key
// prefix/leaseID, attached to its session's lease; the one whose key was
// created first holds the lock, and the others each wait for the deletion
// of the key created just before theirs. A Mutex is not safe for
// concurrent use; make one per goroutine.
type Mutex struct {
	s   *Session
	pfx string // the prefix with its trailing slash

	key string // the key written, "" when the lock is not held or queued for
	rev int64  // its create revision, -1 when there is none
	hdr *pb.ResponseHeader
}

// NewMutex makes a lock on the keys under pfx + "/".
func NewMutex(s *Session, pfx string) *Mutex {
	return &Mutex{s: s, pfx: pfx + "/", rev: -1}
}

// Lock waits until the lock is held, ctx ends, or the session's key is
// lost. When it fails after queueing, it takes its key back out.
func (m *Mutex) Lock(ctx context.Context) error {
	held, hdr, err := m.enqueue(ctx)
	if err != nil {
		return err
	}
	if held {
		m.hdr = hdr
		return nil
	}
	c := m.s.Client()
	if err := waitDeletes(ctx, c, m.pfx, m.rev-1); err != nil {
		// ctx may be over: clean up for the client's whole life instead.
		_ = m.Unlock(c.Ctx())
		return err
	}
	// Every older key is gone; make sure ours is still there, as the
	// session's lease may have ended meanwhile.
	r, err := c.Get(ctx, m.key)
	if err != nil {
		_ = m.Unlock(c.Ctx())
		return err
	}
	if len(r.Kvs) == 0 {
		m.forget()
		return ErrSessionExpired
	}
	m.hdr = r.Header
	return nil
}

// TryLock takes the lock if nobody holds it, and otherwise returns
// ErrLocked at once, leaving nothing behind.
func (m *Mutex) TryLock(ctx context.Context) error {
	held, hdr, err := m.enqueue(ctx)
	if err != nil {
		return err
	}
	if held {
		m.hdr = hdr
		return nil
	}
	if _, err := m.s.Client().Delete(ctx, m.key); err != nil {
		return err
	}
	m.forget()
	return ErrLocked
}

// enqueue writes the session's key unless it exists already (the session
// holds the lock or waits for it through another Mutex), and in the same
// txn reads the oldest key under the prefix: held says it is ours.
func (m *Mutex) enqueue(ctx context.Context) (held bool, hdr *pb.ResponseHeader, err error) {
	lease := m.s.Lease()
	key := fmt.Sprintf("%s%x", m.pfx, lease)
	oldest := client.OpGet(m.pfx, client.WithFirstCreate()...)
	r, err := m.s.Client().Txn(ctx).
		If(client.Compare(client.CreateRevision(key), "=", 0)).
		Then(client.OpPut(key, "", client.WithLease(lease)), oldest).
		Else(client.OpGet(key), oldest).
		Commit()
	if err != nil {
		return false, nil, err
	}
	m.key, m.rev = key, r.Header.Revision
	if !r.Succeeded {
		kvs := r.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return false, nil, fmt.Errorf("mutex: key %q neither created nor found", key)
		}
		m.rev = kvs[0].CreateRevision
	}
	first := r.Responses[1].GetResponseRange().GetKvs()
	return len(first) == 0 || first[0].CreateRevision == m.rev, r.Header, nil
}

// Unlock releases the lock by deleting the session's key.
func (m *Mutex) Unlock(ctx context.Context) error {
	if m.key == "" || m.rev <= 0 {
		return ErrLockReleased
	}
	if _, err := m.s.Client().Delete(ctx, m.key); err != nil {
		return err
	}
	m.forget()
	return nil
}

func (m *Mutex) forget() { m.key, m.rev = "", -1 }

// IsOwner is a txn condition that holds only while this Mutex holds the
// lock, so a write can be made conditional on still holding it.
func (m *Mutex) IsOwner() client.Cmp {
	key := m.key
	if key == "" {
		// No key has create revision -1: the condition fails.
		key = m.pfx
	}
	return client.Compare(client.CreateRevision(key), "=", m.rev)
}

// Key is the key the Mutex holds the lock with; "" when it does not.
func (m *Mutex) Key() string { return m.key }

// Header is the response header of the call that took the lock.
func (m *Mutex) Header() *pb.ResponseHeader { return m.hdr }
