package lease

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// records is a Writer that keeps what the lessor stores.
type records map[string][]byte

func (r records) PutRecord(_, key, value []byte) { r[string(key)] = value }
func (r records) DeleteRecord(_, key []byte)     { delete(r, string(key)) }

func (r records) ForEach(_, _ []byte, fn func(k, v []byte) bool) {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !fn([]byte(k), r[k]) {
			return
		}
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestLessor(interval time.Duration) (*Lessor, *clock, records) {
	c := &clock{t: time.Unix(1000, 0)}
	return New(Config{MinTTL: 2, CheckpointInterval: interval, Now: c.now}), c, records{}
}

func TestExpiryOnlyOnThePrimary(t *testing.T) {
	l, c, w := newTestLessor(0)
	if _, err := l.Grant(w, 1, 10); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Hour)
	if got := l.Expired(10); got != nil {
		t.Fatalf("a follower's lessor expired %v", got)
	}
	if _, err := l.Renew(1); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("renew on a follower: %v, want ErrNotPrimary", err)
	}
	// A new leader gives every lease its TTL from now, plus the extension.
	l.Promote(time.Second)
	c.advance(10 * time.Second)
	if got := l.Expired(10); got != nil {
		t.Fatalf("expired %v within TTL plus extension", got)
	}
	c.advance(time.Second)
	if got := l.Expired(10); !slices.Equal(got, []int64{1}) {
		t.Fatalf("expired %v, want [1]", got)
	}
	// Offered once; again only if the revocation did not apply in time.
	if got := l.Expired(10); got != nil {
		t.Fatalf("expired %v again at once", got)
	}
	c.advance(retryRevoke)
	if got := l.Expired(10); !slices.Equal(got, []int64{1}) {
		t.Fatalf("expired %v after the retry interval, want [1]", got)
	}
	// An expired lease cannot be renewed: its revocation is under way.
	if _, err := l.Renew(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renew of an expired lease: %v, want ErrNotFound", err)
	}
	l.Demote()
	c.advance(time.Hour)
	if got := l.Expired(10); got != nil {
		t.Fatalf("a demoted lessor expired %v", got)
	}
}

func TestRenewPushesExpiryBack(t *testing.T) {
	l, c, w := newTestLessor(0)
	l.Promote(0)
	for _, id := range []int64{1, 2, 3} {
		if _, err := l.Grant(w, id, 10); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		c.advance(6 * time.Second)
		if ttl, err := l.Renew(2); err != nil || ttl != 10 {
			t.Fatalf("renew = %d, %v", ttl, err)
		}
	}
	if len(l.expiry) != 3 {
		t.Fatalf("expiry heap holds %d entries for 3 leases: renewals must move a lease, not add one", len(l.expiry))
	}
	got := l.Expired(10)
	slices.Sort(got)
	if !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("expired %v, want [1 3]: 2 was kept alive", got)
	}
	if _, err := l.Revoke(w, 1); err != nil || len(l.expiry) != 2 {
		t.Fatalf("after revoking a lease the heap holds %d entries (%v), want 2", len(l.expiry), err)
	}
}

func TestExpiredHonoursLimit(t *testing.T) {
	l, c, w := newTestLessor(0)
	l.Promote(0)
	for id := int64(1); id <= 10; id++ {
		if _, err := l.Grant(w, id, 5); err != nil {
			t.Fatal(err)
		}
	}
	c.advance(6 * time.Second)
	if a, b := l.Expired(4), l.Expired(100); len(a) != 4 || len(b) != 6 {
		t.Fatalf("batches of %d and %d, want 4 then the other 6", len(a), len(b))
	}
}

// Checkpoints record how long long leases have left; a lessor recovered
// from the records and promoted gives a lease what was left, not its
// whole TTL, and a reset (checkpoint 0, before a renewal) gives it all.
func TestCheckpointsSurviveRecovery(t *testing.T) {
	l, c, w := newTestLessor(10 * time.Second)
	l.Promote(0)
	if _, err := l.Grant(w, 1, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Grant(w, 2, 5); err != nil { // too short to checkpoint
		t.Fatal(err)
	}
	c.advance(11 * time.Second)
	due := l.DueCheckpoints(10)
	if len(due) != 1 || due[0].ID != 1 || due[0].Remaining != 89 {
		t.Fatalf("due checkpoints %+v, want lease 1 with 89s", due)
	}
	if again := l.DueCheckpoints(10); len(again) != 0 {
		t.Fatalf("checkpoint due again at once: %+v", again)
	}
	if !l.NeedsReset(1) {
		t.Fatal("a renewal while a checkpoint is on its way must reset it after")
	}
	l.Checkpoint(w, 1, due[0].Remaining)

	r := New(Config{MinTTL: 2, Now: c.now})
	if err := r.Recover(w, func(func([]byte, int64)) {}); err != nil {
		t.Fatal(err)
	}
	r.Promote(0)
	st, err := r.TimeToLive(1, false)
	if err != nil || st.TTL != 89 || st.GrantedTTL != 100 {
		t.Fatalf("recovered lease 1: %+v, %v; want 89s left of 100", st, err)
	}
	if !r.NeedsReset(1) || r.NeedsReset(2) {
		t.Fatal("only the checkpointed lease needs a reset before renewal")
	}
	r.Checkpoint(w, 1, 0)
	r.Demote()
	r.Promote(0)
	if st, _ := r.TimeToLive(1, false); st.TTL != 100 {
		t.Fatalf("after a reset lease 1 has %ds, want its whole 100", st.TTL)
	}
}

func TestGrantErrorsAndMinimum(t *testing.T) {
	l, _, w := newTestLessor(0)
	tests := []struct {
		id, ttl int64
		want    int64
		err     error
	}{
		{1, 1, 2, nil},
		{2, 60, 60, nil},
		{1, 60, 0, ErrExists},
		{3, MaxTTL + 1, 0, ErrTTLTooLarge},
		{0, 60, 0, ErrNotFound},
	}
	for _, tt := range tests {
		got, err := l.Grant(w, tt.id, tt.ttl)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("Grant(%d, %d) = %d, %v; want %d, %v", tt.id, tt.ttl, got, err, tt.want, tt.err)
		}
	}
	if len(w) != 2 {
		t.Errorf("%d records stored, want 2: refused grants store nothing", len(w))
	}
}

func TestAttachMovesKeys(t *testing.T) {
	l, _, w := newTestLessor(0)
	l.Promote(0)
	for _, id := range []int64{1, 2} {
		if _, err := l.Grant(w, id, 60); err != nil {
			t.Fatal(err)
		}
	}
	l.Attach([]byte("a"), 1)
	l.Attach([]byte("b"), 1)
	l.Attach([]byte("b"), 2)
	l.Attach([]byte("c"), 2)
	l.Attach([]byte("c"), None)
	l.Attach([]byte("d"), 9) // no such lease: attached to none
	for id, want := range map[int64][]string{1: {"a"}, 2: {"b"}} {
		if st, _ := l.TimeToLive(id, true); !slices.Equal(st.Keys, want) {
			t.Errorf("lease %d keys %v, want %v", id, st.Keys, want)
		}
	}
	keys, err := l.Revoke(w, 2)
	if err != nil || !slices.Equal(keys, []string{"b"}) {
		t.Fatalf("revoke = %v, %v", keys, err)
	}
	if _, err := l.Revoke(w, 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
}
