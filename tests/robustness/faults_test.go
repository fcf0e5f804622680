package robustness

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kvd-io/kvd/tests/framework"
)

// cluster is the system under test: three kvd members whose peer and
// client traffic pass through fault-injecting proxies.
type cluster struct {
	t       *testing.T
	members []*framework.Member
	peer    []*framework.Proxy // in front of each member's peer URL
	client  []*framework.Proxy // in front of each member's client URL
	// admin has a client per member on its own endpoint, for the
	// harness's questions to that member, which faults must not disturb.
	admin []*clientv3.Client
}

// leaseCheckpointInterval is shorter than the workload's lease TTL, so
// leases are checkpointed through raft, and renewals reset those
// checkpoints, while faults happen.
const leaseCheckpointInterval = "4s"

// corruptCheckTime is short enough for several checks in a run.
const corruptCheckTime = "1s"

func startCluster(t *testing.T) *cluster {
	// The leader's corruption check runs through every fault, and must
	// never accuse a member: runScenario requires no alarm at the end.
	flags := []string{"--lease-checkpoint-interval", leaseCheckpointInterval,
		"--corrupt-check-time", corruptCheckTime,
		// What a failed run keeps of each member (writeLogs): its
		// elections and peer links, and its goroutines.
		"--log-level", "info", "--enable-pprof"}
	if n := *snapshotCountFlag; n > 0 {
		flags = append(flags, "--snapshot-count", strconv.Itoa(n))
	}
	ms, peer := framework.StartKvdClusterBehindProxies(t, 3, flags...)
	c := &cluster{t: t, members: ms, peer: peer}
	for _, m := range ms {
		c.client = append(c.client, framework.StartProxy(t, m.Endpoint))
		a, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint}, DialTimeout: time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		c.admin = append(c.admin, a)
	}
	return c
}

// endpoints are what the workload's clients use: the client proxies, so
// that a blackhole can catch their connections.
func (c *cluster) endpoints() []string {
	eps := make([]string, len(c.client))
	for i, p := range c.client {
		eps[i] = p.Addr()
	}
	return eps
}

// direct are the members' own client endpoints, for the harness's
// administrative calls, which faults must not disturb.
func (c *cluster) direct() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.Endpoint
	}
	return eps
}

// status asks member i for its ID and the leader it knows, waiting at
// most d.
func (c *cluster) status(i int, d time.Duration) (id, leader uint64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	resp, err := c.admin[i].Status(ctx, c.members[i].Endpoint)
	if err != nil {
		return 0, 0, err
	}
	return resp.Header.MemberId, resp.Leader, nil
}

// memberID is member i's ID, in the hex form its peer transport sends.
func (c *cluster) memberID(i int) (string, error) {
	id, _, err := c.status(i, 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("status of %s: %w", c.members[i].Name, err)
	}
	return strconv.FormatUint(id, 16), nil
}

// leader is the index of the member that leads, waiting up to 10s for
// one to be elected.
func (c *cluster) leader() (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ids := map[uint64]int{}
		var lead uint64
		for i := range c.members {
			id, l, err := c.status(i, 2*time.Second)
			if err != nil {
				continue
			}
			ids[id] = i
			if l != 0 {
				lead = l
			}
		}
		if i, ok := ids[lead]; ok {
			return i, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("no leader elected within 10s")
}

// A fault disturbs the cluster and undoes the disturbance before it
// returns, leaving every member running (it may still be catching up).
type fault struct {
	name   string
	inject func(c *cluster, rng *rand.Rand) (string, error)
}

// matrix is every fault, in the order docs/robustness.md lists them.
var matrix = []fault{
	{"kill", killMember(false)},
	{"kill-leader", killMember(true)},
	{"freeze", freezeMember},
	{"partition", partition(false)},
	{"partition-leader", partition(true)},
	{"blackhole-client", blackholeClient},
	{"restart-cluster", restartCluster},
	{"replace-member", replaceMember},
}

// pick is a random member, or the leader when leader is set.
func (c *cluster) pick(rng *rand.Rand, leader bool) (int, error) {
	if leader {
		return c.leader()
	}
	return rng.Intn(len(c.members)), nil
}

// between is a random duration in [lo, hi).
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int63n(int64(hi-lo)))
}

func killMember(leader bool) func(*cluster, *rand.Rand) (string, error) {
	return func(c *cluster, rng *rand.Rand) (string, error) {
		i, err := c.pick(rng, leader)
		if err != nil {
			return "", err
		}
		down := between(rng, 200*time.Millisecond, 1200*time.Millisecond)
		m := c.members[i]
		m.Kill()
		time.Sleep(down)
		m.Start()
		return fmt.Sprintf("kill -9 %s, restarted after %v", m.Name, down), nil
	}
}

// freezeMember stops a member with SIGSTOP for longer than an election
// timeout: its peers see it vanish while its connections stay open.
func freezeMember(c *cluster, rng *rand.Rand) (string, error) {
	i, err := c.pick(rng, rng.Intn(2) == 0)
	if err != nil {
		return "", err
	}
	d := between(rng, time.Second, 3*time.Second)
	m := c.members[i]
	start := time.Now()
	m.Pause()
	// A frozen member answers nothing, though its port still accepts.
	time.Sleep(100 * time.Millisecond)
	_, _, probe := c.status(i, 500*time.Millisecond)
	time.Sleep(d - time.Since(start))
	m.Resume()
	if probe == nil {
		return "", fmt.Errorf("%s answered while stopped", m.Name)
	}
	return fmt.Sprintf("SIGSTOP %s for %v", m.Name, d), nil
}

// partition cuts one member off from both directions of peer traffic:
// its own proxy drops what the others send it, and theirs drop what it
// sends them.
func partition(leader bool) func(*cluster, *rand.Rand) (string, error) {
	return func(c *cluster, rng *rand.Rand) (string, error) {
		i, err := c.pick(rng, leader)
		if err != nil {
			return "", err
		}
		id, err := c.memberID(i)
		if err != nil {
			return "", err
		}
		d := between(rng, 2*time.Second, 4*time.Second)
		end := time.Now().Add(d)
		c.peer[i].Cut()
		for j, p := range c.peer {
			if j != i {
				p.RefuseFrom(id)
			}
		}
		// The cut-off member must notice: a follower hears no leader, a
		// leader steps down (check quorum) within an election timeout.
		lost := c.waitNoLeader(i, end)
		time.Sleep(time.Until(end))
		for _, p := range c.peer {
			p.Heal()
		}
		if lost < 0 {
			return "", fmt.Errorf("%s still had a leader after %v cut off", c.members[i].Name, d)
		}
		return fmt.Sprintf("partition %s (%s) for %v, it lost its leader after %v", c.members[i].Name, id, d, lost.Round(time.Millisecond)), nil
	}
}

// waitNoLeader polls member i until it knows no leader, up to until,
// and returns how long that took, or -1.
func (c *cluster) waitNoLeader(i int, until time.Time) time.Duration {
	start := time.Now()
	for time.Now().Before(until) {
		if _, lead, err := c.status(i, 2*time.Second); err == nil && lead == 0 {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return -1
}

// blackholeClient makes one member's client proxy swallow everything:
// clients connected through it hang until their requests time out.
func blackholeClient(c *cluster, rng *rand.Rand) (string, error) {
	i := rng.Intn(len(c.client))
	d := between(rng, 2*time.Second, 4*time.Second)
	start := time.Now()
	c.client[i].Blackhole()
	probe := probeThrough(c.client[i].Addr())
	time.Sleep(d - time.Since(start))
	c.client[i].Heal()
	if probe == nil {
		return "", fmt.Errorf("a request through the blackholed proxy of %s was answered", c.members[i].Name)
	}
	return fmt.Sprintf("blackhole clients of %s for %v", c.members[i].Name, d), nil
}

// probeThrough sends one request through addr alone and returns its
// error: nil when it was answered within half a second.
func probeThrough(addr string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 500 * time.Millisecond, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = cli.Get(ctx, "probe", clientv3.WithSerializable())
	return err
}

// restartCluster crashes every member at once and starts them again,
// which only works if each one's acknowledged state is on disk.
func restartCluster(c *cluster, rng *rand.Rand) (string, error) {
	down := between(rng, 200*time.Millisecond, time.Second)
	framework.CrashCluster(c.members, down)
	return fmt.Sprintf("kill -9 every member, restarted after %v", down), nil
}

// replaceMember removes a follower from the cluster, wipes its data and
// adds it back as a new member at the same peer URL, as an operator
// replaces a member whose disk died.
func replaceMember(c *cluster, rng *rand.Rand) (string, error) {
	lead, err := c.leader()
	if err != nil {
		return "", err
	}
	i := (lead + 1 + rng.Intn(len(c.members)-1)) % len(c.members)
	m := c.members[i]
	oldID, err := c.memberID(i)
	if err != nil {
		return "", err
	}
	admin := c.admin[lead]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, _ := strconv.ParseUint(oldID, 16, 64)
	// A retried change may find its first attempt applied after all.
	if err := retry(ctx, func() error { _, err := admin.MemberRemove(ctx, id); return err }, "member not found"); err != nil {
		return "", fmt.Errorf("remove %s: %w", m.Name, err)
	}
	m.Kill() // it may already have stopped itself on learning of its removal
	if err := os.RemoveAll(m.DataDir); err != nil {
		return "", err
	}
	peerURL := "http://" + c.peer[i].Addr()
	if err := retry(ctx, func() error { _, err := admin.MemberAdd(ctx, []string{peerURL}); return err }, "Peer URLs already exists"); err != nil {
		return "", fmt.Errorf("add %s back: %w", m.Name, err)
	}
	extra := m.Extra
	m.Extra = append(append([]string(nil), extra...), "--initial-cluster-state", "existing")
	m.Start()
	m.Extra = extra // its data dir now says what cluster it is in
	newID, err := c.memberID(i)
	if err != nil {
		return "", err
	}
	if newID == oldID {
		return "", fmt.Errorf("%s came back as the removed member %s", m.Name, oldID)
	}
	return fmt.Sprintf("replace %s: removed %s, wiped, added back as %s", m.Name, oldID, newID), nil
}

// retry calls fn until it succeeds, fails with an error containing one
// of done, or ctx ends: a membership change is refused while too few
// members are known to be up, and may time out yet be applied.
func retry(ctx context.Context, fn func() error, done ...string) error {
	for {
		err := fn()
		if err == nil || slices.ContainsFunc(done, func(d string) bool { return strings.Contains(err.Error(), d) }) {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// parseFaults turns "kill,partition" into faults; "all" is the matrix.
func parseFaults(spec string) ([]fault, error) {
	if spec == "all" {
		return matrix, nil
	}
	var fs []fault
	for _, name := range strings.Split(spec, ",") {
		i := slices.IndexFunc(matrix, func(f fault) bool { return f.name == strings.TrimSpace(name) })
		if i < 0 {
			var known []string
			for _, f := range matrix {
				known = append(known, f.name)
			}
			return nil, fmt.Errorf("unknown fault %q; known: %s", name, strings.Join(known, ", "))
		}
		fs = append(fs, matrix[i])
	}
	return fs, nil
}

// converged waits until every member serves a linearizable read and
// reports the same hash of the store at the revision read: after the
// faults, no member may hold a different history or stay cut off.
func (c *cluster) converged(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Each member is asked on its own: the workload's clients fail over,
	// so a member left without a leader for good would go unnoticed.
	var rev int64
	for i, m := range c.members {
		err := retry(ctx, func() error {
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			defer acancel()
			resp, err := c.admin[i].Get(actx, "converged-check", clientv3.WithCountOnly())
			if err == nil {
				rev = max(rev, resp.Header.Revision)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("linearizable read on %s: %w", m.Name, err)
		}
	}
	hashes := map[string]uint32{}
	for i, m := range c.members {
		err := retry(ctx, func() error {
			h, err := c.admin[i].HashKV(ctx, m.Endpoint, rev)
			if err != nil {
				return err
			}
			hashes[m.Name] = h.Hash
			return nil
		})
		if err != nil {
			return fmt.Errorf("hash of %s at revision %d: %w", m.Name, rev, err)
		}
	}
	for name, h := range hashes {
		if h != hashes[c.members[0].Name] {
			return fmt.Errorf("members' stores differ at revision %d: %v (%s)", rev, hashes, name)
		}
	}
	return nil
}

// noAlarms fails when the cluster lists an alarm: no fault corrupts data
// or fills a disk, so any alarm is a false one.
func (c *cluster) noAlarms() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.admin[0].AlarmList(ctx)
	if err != nil {
		return fmt.Errorf("alarm list: %w", err)
	}
	if len(resp.Alarms) > 0 {
		return fmt.Errorf("alarms raised during the run: %v", resp.Alarms)
	}
	return nil
}

// writeLogs saves each member's log over all its runs, and the stacks of
// its goroutines when it still runs, next to a failed run's history: a
// member that stops serving says why only there.
func (c *cluster) writeLogs(dir string) error {
	client := http.Client{Timeout: 5 * time.Second}
	for _, m := range c.members {
		if err := os.WriteFile(filepath.Join(dir, m.Name+".log"), []byte(m.FullLog()), 0o644); err != nil {
			return err
		}
		resp, err := client.Get(m.ClientURL() + "/debug/pprof/goroutine?debug=2")
		if err != nil {
			continue // stopped, or frozen at the end of the run
		}
		stacks, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, m.Name+".goroutines"), stacks, 0o644); err != nil {
			return err
		}
	}
	return nil
}
