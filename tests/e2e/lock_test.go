package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	v3conc "go.etcd.io/etcd/client/v3/concurrency"

	"github.com/kvd-io/kvd/pkg/client/concurrency"
	"github.com/kvd-io/kvd/tests/framework"
)

// The lock and election tests run on 3-member clusters, kvd's and the
// reference etcd's, with one body each: the etcd run shows that the
// expectations hold for the real thing. Contenders are spread over the
// members, so a lock released through one member must wake a waiter
// watching through another.
var lockClusters = []struct {
	name  string
	start func(t *testing.T) []*framework.Member
}{
	{"kvd", func(t *testing.T) []*framework.Member { return framework.StartKvdCluster(t, 3) }},
	{"etcd", func(t *testing.T) []*framework.Member {
		return framework.StartCluster(t, framework.RequireBin(t, framework.EtcdBin()), 3)
	}},
}

// holdTime is how long each contender holds the lock between its
// records (framework.Exclusion): long enough that holders of a broken
// lock would overlap.
const holdTime = 150 * time.Millisecond

// mutex and election are what clientv3's concurrency types and ours
// have in common.
type (
	mutex interface {
		Lock(context.Context) error
		Unlock(context.Context) error
	}
	election interface {
		Campaign(context.Context, string) error
		Proclaim(context.Context, string) error
		Resign(context.Context) error
	}
)

// holdOnce takes m, records the hold through rec and lets go, even when
// a record fails, so that the others go on and the test ends soon.
func holdOnce(ctx context.Context, x framework.Exclusion, rec *clientv3.Client, name string, m mutex) error {
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("%s: lock: %w", name, err)
	}
	err := x.Enter(ctx, rec, name)
	time.Sleep(holdTime)
	return errors.Join(err, x.Exit(ctx, rec, name), m.Unlock(ctx))
}

// session is a concurrency session of clientv3 (kind "clientv3") or of
// pkg/client ("kvclient"), on a client of its own through ep. crash stops
// its keep-alive and closes its client without revoking the lease, as a
// dying process would leave it.
type session struct {
	lease    clientv3.LeaseID
	crash    func()
	mutex    func(name string) mutex
	election func(name string) election
}

func newSession(t *testing.T, kind, ep string, ttl int) session {
	t.Helper()
	switch kind {
	case "clientv3":
		c := newClientv3(t, ep)
		s, err := v3conc.NewSession(c, v3conc.WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return session{s.Lease(), func() { s.Orphan(); c.Close() },
			func(n string) mutex { return v3conc.NewMutex(s, n) },
			func(n string) election { return v3conc.NewElection(s, n) }}
	case "kvclient":
		c := newClient(t, ep)
		s, err := concurrency.NewSession(c, concurrency.WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return session{clientv3.LeaseID(s.Lease()), func() { s.Orphan(); c.Close() },
			func(n string) mutex { return concurrency.NewMutex(s, n) },
			func(n string) election { return concurrency.NewElection(s, n) }}
	}
	t.Fatalf("unknown session kind %q", kind)
	return session{}
}

// waitKeys waits until exactly n keys exist under prefix: contenders have
// queued, or left.
func waitKeys(ctx context.Context, t *testing.T, c *clientv3.Client, prefix string, n int64) {
	t.Helper()
	var got int64
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if got = r.Count; got == n {
			return
		}
	}
	var kvs any
	if r, err := c.Get(ctx, prefix, clientv3.WithPrefix()); err == nil {
		kvs = r.Kvs
	}
	t.Fatalf("%d keys under %s, want %d: %v", got, prefix, n, kvs)
}

// TestLockContention: 3 kvctl lock processes, 3 goroutines with
// clientv3's Mutex and 2 with ours contend for one lock at once, each
// recording its hold (framework.Exclusion): no two holds overlap, and
// each contender gets the lock once.
func TestLockContention(t *testing.T) {
	kvctl := framework.BuildKvctl(t)
	for _, cl := range lockClusters {
		t.Run(cl.name, func(t *testing.T) { lockContention(t, kvctl, cl.start(t)) })
	}
}

func lockContention(t *testing.T, kvctl string, ms []*framework.Member) {
	const lock = "mylock"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := newClientv3(t, ms[0].Endpoint)
	x := framework.Exclusion{C: rec, Prefix: lock + "-check/"}
	from := x.Start(ctx, t)

	// The test holds the lock first, as "gate", and lets go once every
	// contender has queued: all of them then contend at once.
	gate := newSession(t, "clientv3", ms[0].Endpoint, 10).mutex(lock)
	if err := gate.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := x.Enter(ctx, rec, "gate"); err != nil {
		t.Fatal(err)
	}

	var names []string
	var procs []*framework.Process
	for i := range 3 {
		name, ep := fmt.Sprintf("kvctl-%d", i+1), ms[i].Endpoint
		names = append(names, name)
		procs = append(procs, framework.StartProcess(t, framework.Invocation{
			Bin: kvctl, Endpoints: ep, Timeout: 40 * time.Second,
			Args: append([]string{"lock", "--ttl", "2", lock, "--"}, x.Command(kvctl, ep, name, holdTime)...),
		}))
	}
	errs := make(chan error, 5)
	for i, kind := range []string{"clientv3", "clientv3", "clientv3", "kvclient", "kvclient"} {
		name, ep := fmt.Sprintf("%s-%d", kind, i+1), ms[(i+1)%3].Endpoint
		names = append(names, name)
		m, rc := newSession(t, kind, ep, 2).mutex(lock), newClientv3(t, ep)
		go func() { errs <- holdOnce(ctx, x, rc, name, m) }()
	}
	waitKeys(ctx, t, rec, lock+"/", int64(len(names)+1))
	if err := x.Exit(ctx, rec, "gate"); err != nil {
		t.Fatal(err)
	}
	if err := gate.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, p := range procs {
		if code, ok := p.Wait(20 * time.Second); !ok || code != 0 {
			t.Errorf("exit code %d (ended: %v) of %s", code, ok, p)
		}
	}
	holders, violations := x.History(ctx, t, from)
	t.Logf("holders in order: %q", holders)
	if len(violations) > 0 {
		t.Errorf("mutual exclusion broken: %q", violations)
	}
	if len(holders) == 0 || holders[0] != "gate" ||
		!slices.Equal(slices.Sorted(slices.Values(holders[1:])), slices.Sorted(slices.Values(names))) {
		t.Errorf("holders in order %q, want gate then each of %q once", holders, names)
	}
	waitKeys(ctx, t, rec, lock+"/", 0) // every holder unlocked
}

// holderKilledCases: a holder dies without unlocking, with -9 or by its
// session's keep-alive stopping with the client (orphaned, not revoked),
// while a waiter of another kind queues. The waiter must get the lock
// once the dead holder's lease expires: not before, as nothing revoked
// it, and not long after.
var holderKilledCases = []struct {
	holder, waiter string // kvctl, clientv3 or kvclient (pkg/client)
}{
	{"kvctl", "clientv3"},
	{"clientv3", "kvctl"},
	{"kvclient", "clientv3"},
	{"kvctl", "kvclient"},
}

// killedTTL is the dead holder's session TTL in seconds.
const killedTTL = 3

// TestLockHolderKilled runs holderKilledCases at the same time, each on
// its own lock: t.Run from goroutines, so -parallel does not queue them.
func TestLockHolderKilled(t *testing.T) {
	kvctl := framework.BuildKvctl(t)
	for _, cl := range lockClusters {
		t.Run(cl.name, func(t *testing.T) {
			ms := cl.start(t)
			var wg sync.WaitGroup
			for i, tc := range holderKilledCases {
				wg.Go(func() {
					t.Run(tc.holder+"-killed-"+tc.waiter+"-waits", func(t *testing.T) {
						holderKilled(t, kvctl, ms[i%3].Endpoint, ms[(i+1)%3].Endpoint, fmt.Sprintf("lock%d", i), tc.holder, tc.waiter)
					})
				})
			}
			wg.Wait()
		})
	}
}

func holderKilled(t *testing.T, kvctl, holderEp, waiterEp, lock, holder, waiter string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := newClientv3(t, waiterEp)
	lease, crash := startHolder(ctx, t, kvctl, holderEp, lock, holder)
	got := startWaiter(ctx, t, kvctl, waiterEp, lock, waiter)
	waitKeys(ctx, t, rec, lock+"/", 2)

	crash()
	killed := time.Now()
	// The dead holder's lease outlives it: a crash revokes nothing.
	if ttl, err := rec.TimeToLive(ctx, lease); err != nil || ttl.TTL <= 0 {
		t.Fatalf("lease %x right after the holder died: %v %v", lease, ttl, err)
	}
	var waited time.Duration
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("%s waiter: %v", waiter, r.err)
		}
		waited = r.at.Sub(killed)
	case <-time.After((killedTTL + 5) * time.Second):
		t.Fatalf("%s waiter still waits %ds after the %s holder died", waiter, killedTTL+5, holder)
	}
	// The lease was last renewed at most a keep-alive interval (TTL/3)
	// before the crash, so it expires no sooner than 2/3 TTL after it;
	// expiry is checked every 500ms and revoking takes a commit, hence
	// the slack above the TTL.
	low, high := killedTTL*time.Second*2/3-200*time.Millisecond, (killedTTL+3)*time.Second
	if waited < low || waited > high {
		t.Errorf("%s waiter got the lock %v after the %s holder died; want within [%v, %v]", waiter, waited, holder, low, high)
	}
	t.Logf("%s waiter got the lock %v after the %s holder died", waiter, waited.Round(time.Millisecond), holder)
	// And it is the lease's expiry that freed it.
	if ttl, err := rec.TimeToLive(ctx, lease); err != nil || ttl.TTL != -1 {
		t.Errorf("lease %x once the waiter holds: %v %v; want expired (TTL -1)", lease, ttl, err)
	}
}

// startHolder takes lock through ep as kind, with a killedTTL session,
// and returns that session's lease and a crash that stops the holder
// without unlocking or revoking anything: kill -9 for kvctl.
func startHolder(ctx context.Context, t *testing.T, kvctl, ep, lock, kind string) (clientv3.LeaseID, func()) {
	t.Helper()
	if kind != "kvctl" {
		s := newSession(t, kind, ep, killedTTL)
		if err := s.mutex(lock).Lock(ctx); err != nil {
			t.Fatal(err)
		}
		return s.lease, s.crash
	}
	p := framework.StartProcess(t, framework.Invocation{Bin: kvctl, Endpoints: ep, Timeout: 40 * time.Second,
		Args: []string{"lock", "--ttl", strconv.Itoa(killedTTL), lock}})
	if !p.WaitOutput("\n", 10*time.Second) {
		t.Fatalf("kvctl holder never took the lock: %s", p)
	}
	// It prints the key it holds, <lock>/<lease ID in hex>.
	stdout, _ := p.Output()
	id, err := strconv.ParseUint(strings.TrimPrefix(strings.SplitN(stdout, "\n", 2)[0], lock+"/"), 16, 64)
	if err != nil {
		t.Fatalf("lease ID in kvctl lock's key: %v", err)
	}
	return clientv3.LeaseID(int64(id)), p.Kill
}

// acquired says when a waiter got its lock, or why it failed.
type acquired struct {
	at  time.Time
	err error
}

// startWaiter queues for lock through ep as kind, and says when it got
// the lock; it then keeps it.
func startWaiter(ctx context.Context, t *testing.T, kvctl, ep, lock, kind string) <-chan acquired {
	t.Helper()
	got := make(chan acquired, 1)
	if kind == "kvctl" {
		p := framework.StartProcess(t, framework.Invocation{Bin: kvctl, Endpoints: ep, Timeout: 40 * time.Second,
			Args: []string{"lock", lock}})
		go func() {
			if !p.WaitOutput(lock+"/", 20*time.Second) {
				got <- acquired{err: fmt.Errorf("never printed the lock's key: %s", p)}
				return
			}
			got <- acquired{at: time.Now()}
		}()
		return got
	}
	m := newSession(t, kind, ep, 10).mutex(lock)
	go func() {
		err := m.Lock(ctx)
		got <- acquired{time.Now(), err}
	}()
	return got
}

// candidate is one campaigner in TestElection: a kvctl elect process, or
// a goroutine with clientv3's Election or ours. leading is closed once it
// believes it leads and has recorded so (err says if that failed); lost
// gets why a campaign ended without leading.
type candidate struct {
	name    string
	leading chan struct{}
	err     error
	lost    chan error

	proc   *framework.Process // kvctl
	e      election           // Go
	s      session            // Go
	cancel context.CancelFunc // Go: gives up campaigning
}

// run records the leadership through rec as soon as believe returns,
// which is once the candidate believes it leads, and closes leading.
func (cd *candidate) run(ctx context.Context, x framework.Exclusion, rec *clientv3.Client, believe func() error) *candidate {
	cd.leading, cd.lost = make(chan struct{}), make(chan error, 1)
	go func() {
		if err := believe(); err != nil {
			cd.lost <- err
			return
		}
		cd.err = x.Enter(ctx, rec, cd.name)
		close(cd.leading)
	}()
	return cd
}

// kvctlCandidate campaigns with kvctl elect, which prints the leader key
// and the proposal once elected; the test records on its behalf then.
func kvctlCandidate(ctx context.Context, t *testing.T, x framework.Exclusion, kvctl, ep, election, name string) *candidate {
	cd := &candidate{name: name}
	cd.proc = framework.StartProcess(t, framework.Invocation{Bin: kvctl, Endpoints: ep, Timeout: 40 * time.Second,
		Args: []string{"elect", election, name}})
	return cd.run(ctx, x, x.C, func() error {
		if !cd.proc.WaitOutput("\n"+name+"\n", 30*time.Second) {
			return fmt.Errorf("%s never led", name)
		}
		return nil
	})
}

// goCandidate campaigns in a goroutine in a session of kind, of ttl
// seconds, and records through a clientv3 client of its own.
func goCandidate(ctx context.Context, t *testing.T, x framework.Exclusion, kind, ep, election, name string, ttl int) *candidate {
	cd := &candidate{name: name, s: newSession(t, kind, ep, ttl)}
	cd.e = cd.s.election(election)
	cctx, cancel := context.WithCancel(ctx)
	cd.cancel = cancel
	return cd.run(ctx, x, newClientv3(t, ep), func() error { return cd.e.Campaign(cctx, name) })
}

// TestElection: a kvctl elect -l listener follows an election while
// kvctl, clientv3 and pkg/client candidates come and go: resigning,
// interrupted, giving up while waiting, killed -9 (its lease then
// revoked, as etcdctl's session lasts 60s), crashed with a short lease.
// Each leader records its leadership (framework.Exclusion), so no two overlap; the
// listener prints every leader and proclaimed value, in the order the
// records show.
func TestElection(t *testing.T) {
	kvctl := framework.BuildKvctl(t)
	for _, cl := range lockClusters {
		t.Run(cl.name, func(t *testing.T) { electionScript(t, kvctl, cl.start(t)) })
	}
}

func electionScript(t *testing.T, kvctl string, ms []*framework.Member) {
	const name, crashTTL = "myelection", 2
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := newClientv3(t, ms[0].Endpoint)
	x := framework.Exclusion{C: rec, Prefix: name + "-check/"}
	from := x.Start(ctx, t)
	watcher, err := v3conc.NewSession(rec)
	if err != nil {
		t.Fatal(err)
	}
	listener := framework.StartProcess(t, framework.Invocation{Bin: kvctl, Endpoints: ms[0].Endpoint,
		Args: []string{"elect", "-l", name}, Timeout: 40 * time.Second})

	// queue returns once cd's key is the nth in line.
	queue := func(cd *candidate, n int64) *candidate {
		waitKeys(ctx, t, rec, name+"/", n)
		return cd
	}
	// listened waits until the listener has printed value as the
	// leader's, checks Leader agrees, and returns the leader key.
	listened := func(value string) string {
		t.Helper()
		if !listener.WaitOutput("\n"+value+"\n", 10*time.Second) {
			t.Fatalf("the listener never printed %s: %s", value, listener)
		}
		r, err := v3conc.NewElection(watcher, name).Leader(ctx)
		if err != nil || string(r.Kvs[0].Value) != value {
			t.Fatalf("Leader while %s leads: %v %v", value, r, err)
		}
		return string(r.Kvs[0].Key)
	}
	// leads waits until cd leads and returns its leader key.
	leads := func(cd *candidate) string {
		t.Helper()
		select {
		case <-cd.leading:
		case err := <-cd.lost:
			t.Fatalf("%s: %v", cd.name, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s does not lead", cd.name)
		}
		if cd.err != nil {
			t.Fatal(cd.err)
		}
		return listened(cd.name)
	}
	stop := func(p *framework.Process) {
		t.Helper()
		p.Signal(os.Interrupt)
		if code, ok := p.Wait(10 * time.Second); !ok || code != 0 {
			t.Fatalf("exit code %d (ended: %v) after SIGINT: %s", code, ok, p)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// They queue one at a time, so leaders follow in that order.
	p1 := queue(kvctlCandidate(ctx, t, x, kvctl, ms[1].Endpoint, name, "p1"), 1)
	g2 := queue(goCandidate(ctx, t, x, "clientv3", ms[2].Endpoint, name, "g2", 10), 2)
	w3 := queue(kvctlCandidate(ctx, t, x, kvctl, ms[0].Endpoint, name, "w3"), 3)
	k4 := queue(goCandidate(ctx, t, x, "kvclient", ms[1].Endpoint, name, "k4", 10), 4)
	c5 := queue(goCandidate(ctx, t, x, "clientv3", ms[0].Endpoint, name, "c5", 10), 5)
	p6 := queue(kvctlCandidate(ctx, t, x, kvctl, ms[2].Endpoint, name, "p6"), 6)
	g7 := queue(goCandidate(ctx, t, x, "clientv3", ms[1].Endpoint, name, "g7", crashTTL), 7)

	leads(p1)
	// w3, interrupted while waiting, withdraws; kvctl p1 resigns on SIGINT.
	w3.proc.Signal(os.Interrupt)
	if _, ok := w3.proc.Wait(10 * time.Second); !ok {
		t.Fatalf("interrupted while waiting, still runs: %s", w3.proc)
	}
	waitKeys(ctx, t, rec, name+"/", 6)
	must(x.Exit(ctx, rec, "p1"))
	stop(p1.proc)

	leads(g2)
	// c5 gives up campaigning: its context ends, and it withdraws.
	c5.cancel()
	if err := <-c5.lost; !errors.Is(err, context.Canceled) {
		t.Fatalf("c5 campaign after its context was canceled: %v", err)
	}
	must(x.Exit(ctx, rec, "g2"))
	must(g2.e.Resign(ctx))

	leads(k4)
	// A proclaimed value is a change the listener prints too.
	must(x.Rename(ctx, rec, "k4", "k4-again"))
	must(k4.e.Proclaim(ctx, "k4-again"))
	listened("k4-again")
	must(x.Exit(ctx, rec, "k4-again"))
	must(k4.e.Resign(ctx))

	p6Key := leads(p6)
	// Killed, p6 still leads by its key until its lease ends: nobody
	// else may lead meanwhile. Its lease is revoked, as an operator would.
	must(x.Exit(ctx, rec, "p6"))
	p6.proc.Kill()
	time.Sleep(500 * time.Millisecond)
	select {
	case <-g7.leading:
		t.Fatal("g7 leads while killed p6's key is still there")
	default:
	}
	listened("p6") // Leader still names p6
	r := framework.Run(t, framework.Invocation{Bin: kvctl, Endpoints: ms[1].Endpoint,
		Args: []string{"lease", "revoke", strings.TrimPrefix(p6Key, name+"/")}})
	if r.Code != 0 {
		t.Fatalf("lease revoke: %+v", r)
	}

	leads(g7)
	p8 := queue(kvctlCandidate(ctx, t, x, kvctl, ms[0].Endpoint, name, "p8"), 2)
	// g7 crashes: its lease is no longer renewed, and p8 leads once it
	// expires (holderKilled explains the bounds).
	must(x.Exit(ctx, rec, "g7"))
	g7.s.crash()
	crashed := time.Now()
	leads(p8)
	waited := time.Since(crashed)
	if low, high := crashTTL*time.Second*2/3-200*time.Millisecond, (crashTTL+3)*time.Second; waited < low || waited > high {
		t.Errorf("p8 leads %v after g7 crashed; want within [%v, %v]", waited, low, high)
	}
	t.Logf("p8 leads %v after g7 crashed", waited.Round(time.Millisecond))
	must(x.Exit(ctx, rec, "p8"))
	stop(p8.proc)
	waitKeys(ctx, t, rec, name+"/", 0)
	stop(listener)

	want := []string{"p1", "g2", "k4", "k4-again", "p6", "g7", "p8"}
	stdout, _ := listener.Output()
	if got := listenedValues(t, name, stdout); !slices.Equal(got, want) {
		t.Errorf("the listener printed leaders %q, want %q; output:\n%s", got, want, stdout)
	}
	holders, violations := x.History(ctx, t, from)
	if len(violations) > 0 || !slices.Equal(holders, want) {
		t.Errorf("leaders recorded %q with violations %q; want %q and none", holders, violations, want)
	}
}

// listenedValues parses kvctl elect -l's output, a key line and a value
// line per leader or proclaimed value, into the values.
func listenedValues(t *testing.T, election, out string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines)%2 != 0 {
		t.Fatalf("the listener's output is not key and value lines:\n%s", out)
	}
	var values []string
	for i := 0; i < len(lines); i += 2 {
		if !strings.HasPrefix(lines[i], election+"/") {
			t.Fatalf("the listener printed %q as a leader key:\n%s", lines[i], out)
		}
		values = append(values, lines[i+1])
	}
	return values
}
