package lease

import "time"

// The primary lessor is the leader's: it alone keeps time for leases.

// Promote makes this lessor the primary, once the member leads and has
// applied everything its predecessors committed. Every lease gets its
// checkpointed remaining TTL (or its whole TTL) from now, plus extend, so
// the time an election took does not count against any lease.
func (l *Lessor) Promote(extend time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.primary = true
	for _, le := range l.leases {
		l.refresh(le, extend)
	}
}

// Demote stops the lessor keeping time, when the member stops leading.
func (l *Lessor) Demote() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return
	}
	l.primary = false
	for _, le := range l.expiry {
		le.index = -1
	}
	l.expiry = nil
	for _, le := range l.leases {
		le.expiry, le.dueAt, le.nextCheckpoint = time.Time{}, time.Time{}, time.Time{}
	}
}

// refresh starts le's clock again: its remaining TTL from now, plus
// extend. The caller holds mu and is the primary.
func (l *Lessor) refresh(le *lease, extend time.Duration) {
	ttl := le.ttl
	if le.remaining > 0 {
		ttl = le.remaining
	}
	now := l.cfg.Now()
	le.expiry = now.Add(time.Duration(ttl)*time.Second + extend)
	l.schedule(le, le.expiry)
	l.scheduleCheckpoint(le, now)
}

// scheduleCheckpoint plans le's next checkpoint, for leases that will
// still be alive then: a short lease loses little by starting afresh on
// a new leader.
func (l *Lessor) scheduleCheckpoint(le *lease, now time.Time) {
	le.nextCheckpoint = time.Time{}
	iv := l.cfg.CheckpointInterval
	if iv > 0 && le.expiry.Sub(now) > iv {
		le.nextCheckpoint = now.Add(iv)
	}
}

// NeedsReset says whether renewing lease id must first clear its
// checkpointed remaining TTL through raft: otherwise a leader change
// after the renewal would give it back only what was left before it.
// That holds too while a checkpoint is on its way, which would land after
// the renewal.
func (l *Lessor) NeedsReset(id int64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	le, ok := l.leases[id]
	return ok && (le.remaining > 0 || le.checkpointing)
}

// Renew gives lease id its whole TTL again, from now, and returns the
// TTL. A lease whose time ran out is as good as revoked: its revocation
// is on its way through raft.
func (l *Lessor) Renew(id int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return 0, ErrNotPrimary
	}
	le, ok := l.leases[id]
	now := l.cfg.Now()
	if !ok || !now.Before(le.expiry) {
		return 0, ErrNotFound
	}
	le.expiry = now.Add(time.Duration(le.ttl) * time.Second)
	l.schedule(le, le.expiry)
	l.scheduleCheckpoint(le, now)
	return le.ttl, nil
}

// Expired returns up to limit leases whose time ran out, for the leader to
// revoke. Each is offered again after retryRevoke should its revocation
// not apply (a lost proposal, a leader change).
func (l *Lessor) Expired(limit int) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return nil
	}
	now := l.cfg.Now()
	var ids []int64
	for len(ids) < limit && l.expiry.Len() > 0 && !l.expiry[0].dueAt.After(now) {
		le := l.expiry[0]
		ids = append(ids, le.id)
		l.schedule(le, now.Add(retryRevoke))
	}
	return ids
}

// CheckpointEntry is a lease's remaining TTL to record through raft.
type CheckpointEntry struct {
	ID        int64
	Remaining int64
}

// DueCheckpoints returns up to limit leases whose checkpoint is due, with
// their remaining TTL, and plans the next one of each.
func (l *Lessor) DueCheckpoints(limit int) []CheckpointEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary || l.cfg.CheckpointInterval <= 0 {
		return nil
	}
	now := l.cfg.Now()
	var due []CheckpointEntry
	for _, le := range l.leases {
		if len(due) == limit {
			break
		}
		if le.nextCheckpoint.IsZero() || le.nextCheckpoint.After(now) {
			continue
		}
		due = append(due, CheckpointEntry{ID: le.id, Remaining: max(1, ceilSeconds(le.expiry.Sub(now)))})
		le.checkpointing = true
		l.scheduleCheckpoint(le, now)
	}
	return due
}
