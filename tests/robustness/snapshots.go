package robustness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// Snapshotter saves a snapshot of a random member now and then while the
// workload runs, and keeps what each says the workload keys held at its
// revision, for CheckSnapshots to hold against the event log: a snapshot
// must be one consistent state of the store, whatever faults and defrags
// happen while it streams. A member that is down or frozen fails the save;
// that is only counted.
type Snapshotter struct {
	dir   string
	mu    sync.Mutex
	taken []SnapshotState
	fail  int
	errs  []error
	done  chan struct{}
}

// SnapshotState is the workload keys' values as of a snapshot's revision.
type SnapshotState struct {
	Member string
	Rev    int64
	Values map[string]string
}

// StartSnapshotter runs until ctx ends, saving a snapshot of one of eps
// every minGap to maxGap into files under dir.
func StartSnapshotter(ctx context.Context, dir string, eps []string, rng *rand.Rand, minGap, maxGap time.Duration) *Snapshotter {
	s := &Snapshotter{dir: dir, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for i := 0; ; i++ {
			gap := minGap + time.Duration(rng.Int63n(int64(maxGap-minGap)+1))
			select {
			case <-ctx.Done():
				return
			case <-time.After(gap):
			}
			s.save(ctx, eps[rng.Intn(len(eps))], filepath.Join(dir, fmt.Sprintf("snap-%d.db", i)))
		}
	}()
	return s
}

func (s *Snapshotter) save(ctx context.Context, ep, path string) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		s.record(SnapshotState{}, err, false)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	rc, err := c.Snapshot(ctx)
	if err != nil {
		s.record(SnapshotState{}, err, false)
		return
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		s.record(SnapshotState{}, err, false)
		return
	}
	// From here on a failure is the snapshot's, not the fault's: the
	// stream ended cleanly.
	st, err := readSnapshot(data, path)
	st.Member = ep
	s.record(st, err, true)
}

// readSnapshot checks the trailing SHA-256 of a streamed snapshot, then
// reads the workload keys' values at the file's revision.
func readSnapshot(data []byte, path string) (SnapshotState, error) {
	if len(data) < sha256.Size {
		return SnapshotState{}, fmt.Errorf("snapshot of %d bytes has no digest", len(data))
	}
	db, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(db); !bytes.Equal(got[:], sum) {
		return SnapshotState{}, errors.New("snapshot digest does not match its content")
	}
	if err := os.WriteFile(path, db, 0o600); err != nil {
		return SnapshotState{}, err
	}
	defer os.Remove(path)
	bdb, err := bbolt.Open(path, 0o400, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return SnapshotState{}, fmt.Errorf("open snapshot: %w", err)
	}
	defer bdb.Close()
	st := SnapshotState{Values: map[string]string{}}
	err = bdb.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return errors.New("snapshot has no key bucket")
		}
		// Rows are in revision order, so the last row of a key is its
		// state at the file's revision.
		return b.ForEach(func(k, v []byte) error {
			var kv mvccpb.KeyValue
			if err := proto.Unmarshal(v, &kv); err != nil {
				return fmt.Errorf("row %x: %w", k, err)
			}
			st.Rev = max(st.Rev, revOfRow(k))
			if !strings.HasPrefix(string(kv.Key), "key") {
				return nil
			}
			if len(k) == 18 && k[17] == 't' {
				delete(st.Values, string(kv.Key))
			} else {
				st.Values[string(kv.Key)] = string(kv.Value)
			}
			return nil
		})
	})
	return st, err
}

func revOfRow(k []byte) int64 {
	var r int64
	for _, b := range k[:8] {
		r = r<<8 | int64(b)
	}
	return r
}

func (s *Snapshotter) record(st SnapshotState, err error, streamed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.taken = append(s.taken, st)
	case streamed:
		s.errs = append(s.errs, fmt.Errorf("snapshot of %s: %w", st.Member, err))
	default:
		s.fail++
	}
}

// Stop waits for the snapshotter to end (its context must be done) and
// returns the snapshots it read, how many saves a fault cut short, and
// the snapshots found damaged.
func (s *Snapshotter) Stop() (taken []SnapshotState, failed int, damaged []error) {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken, s.fail, s.errs
}

// CheckSnapshots requires each snapshot's workload keys to hold what the
// event log says they held at the snapshot's revision.
func CheckSnapshots(taken []SnapshotState, log *EventLog) []error {
	var errs []error
	for _, st := range taken {
		if st.Rev < log.From || st.Rev > log.To {
			errs = append(errs, fmt.Errorf("snapshot of %s at revision %d is outside the event log (%d, %d]", st.Member, st.Rev, log.From, log.To))
			continue
		}
		want := map[string]string{}
		for _, ev := range log.Events {
			if ev.ModRev > st.Rev {
				break
			}
			if ev.Type == EventPut {
				want[ev.Key] = ev.Value
			} else {
				delete(want, ev.Key)
			}
		}
		if diff := diffValues(st.Values, want); diff != "" {
			errs = append(errs, fmt.Errorf("snapshot of %s at revision %d is not the store's state then: %s", st.Member, st.Rev, diff))
		}
	}
	return errs
}

func diffValues(got, want map[string]string) string {
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return fmt.Sprintf("key %s is %q, the log says %q", k, g, v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			return fmt.Sprintf("key %s is %q, the log says it does not exist", k, v)
		}
	}
	return ""
}
