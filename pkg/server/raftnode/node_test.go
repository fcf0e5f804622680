package raftnode

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func testConfig(dir string) Config {
	return Config{Dir: dir, Metadata: []byte("m"), TickInterval: 10 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 1}
}

// applyConfEntry does the state machine's part for a committed conf
// change entry: it tells raft the change is applied, and returns the
// configuration that results. Other entries return nil.
func applyConfEntry(n *Node, e *raftpb.Entry) (*raftpb.ConfState, error) {
	if e.GetType() != raftpb.EntryConfChange {
		return nil, nil
	}
	cc := new(raftpb.ConfChange)
	if err := proto.Unmarshal(e.Data, cc); err != nil {
		return nil, fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
	}
	return n.ApplyConfChange(cc), nil
}

// collect reads committed entries until one carries want, applying conf
// changes as the state machine must.
func collect(t *testing.T, n *Node, want string) (last *raftpb.Entry, cs *raftpb.ConfState) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case c := <-n.Committed():
			for _, e := range c.Entries {
				last = e
				applied, err := applyConfEntry(n, e)
				if err != nil {
					t.Fatal(err)
				}
				if applied != nil {
					cs = applied
				}
				if string(e.Data) == want {
					return last, cs
				}
			}
		case <-timeout:
			t.Fatalf("entry %q never committed", want)
		}
	}
}

func TestSingleMemberCommitsSnapshotsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	n, restored, err := Open(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !restored.Fresh {
		t.Fatal("new dir not reported fresh")
	}
	if err := n.Start(1, []raft.Peer{{ID: 1}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cs *raftpb.ConfState
	for i := range 20 {
		want := fmt.Sprintf("p%d", i)
		if err := n.Propose(ctx, []byte(want)); err != nil {
			t.Fatal(err)
		}
		var got *raftpb.ConfState
		if _, got = collect(t, n, want); got != nil {
			cs = got
		}
	}
	if n.Leader() != 1 || n.Term() == 0 {
		t.Fatalf("leader %d term %d", n.Leader(), n.Term())
	}
	st := n.Status()
	if err := n.Snapshot(st.Applied, cs); err != nil {
		t.Fatal(err)
	}
	n.Stop()

	n, restored, err = Open(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	if restored.Fresh || string(restored.Metadata) != "m" || restored.Snapshot == nil {
		t.Fatalf("restart: fresh %v metadata %q snapshot %v", restored.Fresh, restored.Metadata, restored.Snapshot)
	}
	if err := n.Start(1, nil); err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if err := n.Propose(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	last, _ := collect(t, n, "after")
	if last.GetIndex() <= restored.Snapshot.GetMetadata().GetIndex() {
		t.Fatalf("entry after restart at %d, not after snapshot %d", last.GetIndex(), restored.Snapshot.GetMetadata().GetIndex())
	}
}

// awaitLeader applies what n commits, conf changes included, until n
// leads, failing after wait.
func awaitLeader(t *testing.T, n *Node, wait time.Duration) {
	t.Helper()
	timeout := time.After(wait)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for n.Leader() != 1 {
		select {
		case c := <-n.Committed():
			for _, e := range c.Entries {
				if _, err := applyConfEntry(n, e); err != nil {
					t.Fatal(err)
				}
			}
		case <-tick.C:
		case <-timeout:
			t.Fatalf("no leader after %v (term %d)", wait, n.Term())
		}
	}
}

// The only voter of a cluster leads at once, fresh or restarted, with or
// without a snapshot holding its configuration: the election timeout here
// (ten thousand seconds) is far beyond the test's patience, so waiting for
// it would fail.
func TestOnlyVoterCampaignsAtOnce(t *testing.T) {
	slow := func(dir string) Config {
		c := testConfig(dir)
		c.ElectionTicks = 1_000_000
		return c
	}
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			dir := t.TempDir()
			n, _, err := Open(slow(dir))
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(1, []raft.Peer{{ID: 1}}); err != nil {
				t.Fatal(err)
			}
			awaitLeader(t, n, 10*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := n.Propose(ctx, []byte("x")); err != nil {
				t.Fatal(err)
			}
			collect(t, n, "x")
			if snapshot {
				st := n.Status()
				cs := &raftpb.ConfState{Voters: []uint64{1}}
				if err := n.Snapshot(st.Applied, cs); err != nil {
					t.Fatal(err)
				}
			}
			n.Stop()

			n, _, err = Open(slow(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer n.Stop()
			if err := n.Start(1, nil); err != nil {
				t.Fatal(err)
			}
			awaitLeader(t, n, 10*time.Second)
		})
	}
}

// TestProposeBatch: a batch becomes one entry per proposal, committed in
// the order given; a stopped node takes none of it.
func TestProposeBatch(t *testing.T) {
	n, _ := startSingle(t, testConfig(t.TempDir()))
	commit(t, n, "first")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, size := range []int{1, 2, 7} {
		var data [][]byte
		for i := range size {
			data = append(data, fmt.Appendf(nil, "b%d-%d", size, i))
		}
		if got, err := n.ProposeBatch(ctx, data); got != size || err != nil {
			t.Fatalf("ProposeBatch of %d = %d, %v", size, got, err)
		}
		var seen []string
		timeout := time.After(10 * time.Second)
		for len(seen) < size {
			select {
			case c := <-n.Committed():
				for _, e := range c.Entries {
					if len(e.Data) > 0 {
						seen = append(seen, string(e.Data))
					}
				}
			case <-timeout:
				t.Fatalf("batch of %d: only %q committed", size, seen)
			}
		}
		for i, d := range data {
			if seen[i] != string(d) {
				t.Fatalf("batch of %d committed as %q", size, seen)
			}
		}
	}

	n.Stop()
	if got, err := n.ProposeBatch(ctx, [][]byte{[]byte("x"), []byte("y")}); got != 0 || err == nil {
		t.Fatalf("ProposeBatch on a stopped node = %d, %v", got, err)
	}
}

// startSingle opens cfg's member and starts it as the only voter of a new
// cluster (peers are ignored when it restarts from its WAL).
func startSingle(t *testing.T, cfg Config) (*Node, *Restored) {
	t.Helper()
	n, restored, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(1, []raft.Peer{{ID: 1}}); err != nil {
		t.Fatal(err)
	}
	return n, restored
}

// commit proposes data and waits for it to commit, returning the
// configuration set by conf changes committed along the way, if any.
func commit(t *testing.T, n *Node, data string) *raftpb.ConfState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Propose(ctx, []byte(data)); err != nil {
		t.Fatal(err)
	}
	_, cs := collect(t, n, data)
	return cs
}
