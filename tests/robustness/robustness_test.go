package robustness

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The defaults keep every scenario short enough for `make test`; `make
// robustness DURATION=5m SEED=1` runs longer, reproducible ones.
var (
	durationFlag      = flag.Duration("duration", 12*time.Second, "how long the workload and the faults run, per scenario")
	seedFlag          = flag.Int64("seed", 0, "seed of the fault schedule and the workload; 0 picks one from the clock")
	faultsFlag        = flag.String("faults", "", "run one scenario with these faults (comma-separated names, or all) instead of the matrix")
	checkTimeoutFlag  = flag.Duration("check-timeout", 0, "how long porcupine may search; 0 means 30s plus twice the duration")
	snapshotCountFlag = flag.Int("snapshot-count", 0, "members' --snapshot-count; a small one lands kills around snapshot saves and WAL releases (0: the members' default)")
)

const (
	workers     = 5
	watchers    = 3
	opTimeout   = 3 * time.Second
	minFaultGap = 1 * time.Second
	maxFaultGap = 3 * time.Second
	// maxOps bounds the history of a long run: porcupine's memory grows
	// with the square of the history's length, so workers are paced to
	// record about this many operations at most, whatever the duration.
	maxOps = 40000
)

// scenarios is the fault matrix, grouped so that each group's faults
// are injected several times in a short run.
var scenarios = []struct{ name, faults string }{
	{"kill", "kill,kill-leader"},
	{"freeze", "freeze"},
	{"partition", "partition,partition-leader"},
	{"blackhole", "blackhole-client"},
	{"restart", "restart-cluster,replace-member"},
	{"mixed", "all"},
}

// TestRobustness runs a mixed workload against a 3-member kvd cluster
// while faults are injected, one scenario of the matrix at a time, and
// checks that the recorded history is linearizable.
func TestRobustness(t *testing.T) {
	if testing.Short() {
		t.Skip("robustness scenarios skipped in -short mode")
	}
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	if *faultsFlag != "" {
		fs, err := parseFaults(*faultsFlag)
		if err != nil {
			t.Fatal(err)
		}
		runScenario(t, "custom", fs, seed)
		return
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			fs, err := parseFaults(sc.faults)
			if err != nil {
				t.Fatal(err)
			}
			runScenario(t, sc.name, fs, seed)
		})
	}
}

// runScenario is one run: a new cluster, the workload, faults drawn
// from fs until the duration is up, then the checks.
func runScenario(t *testing.T, name string, fs []fault, seed int64) {
	duration := *durationFlag
	t.Logf("scenario %s, seed %d, duration %v (reproduce with: make robustness SEED=%d DURATION=%v RUN=TestRobustness/%s)",
		name, seed, duration, seed, duration, name)
	rng := rand.New(rand.NewSource(seed))

	c := startCluster(t)
	eps := c.endpoints()
	initialRev := currentRevision(t, c.direct())

	// The watchers start before the workers, from the initial revision,
	// so that they see every event of the run.
	ws, err := StartWatchers(context.Background(), eps, watchers, initialRev)
	if err != nil {
		t.Fatal(err)
	}

	// pace is the least time between the starts of one worker's requests.
	pace := duration * workers / maxOps
	rec := NewRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		wg.Add(1)
		go func(w int, cli *clientv3.Client) {
			defer wg.Done()
			runWorker(ctx, w, rand.New(rand.NewSource(seed+int64(w)+1)), rec.NewClient(cli, opTimeout), pace, ws.CompactBound)
		}(w, cli)
	}

	defragger := StartDefragger(ctx, c.direct(), rand.New(rand.NewSource(seed-1)), minFaultGap, maxFaultGap)
	snapshotter := StartSnapshotter(ctx, t.TempDir(), c.direct(), rand.New(rand.NewSource(seed-2)), minFaultGap, maxFaultGap)
	injected := injectFaults(t, c, fs, rng, time.Now().Add(duration))
	cancel()
	wg.Wait()
	defragsOK, defragsFailed, longestDefrag := defragger.Stop()
	t.Logf("defrags of a random member during the run: %d done (longest %v), %d failed",
		defragsOK, longestDefrag.Round(time.Millisecond), defragsFailed)
	snapshots, snapshotsFailed, damaged := snapshotter.Stop()
	t.Logf("snapshots of a random member during the run: %d read, %d cut short by faults", len(snapshots), snapshotsFailed)
	for _, err := range damaged {
		t.Error(err)
	}

	if err := c.converged(30 * time.Second); err != nil {
		t.Errorf("after the faults: %v", err)
	}
	if err := c.noAlarms(); err != nil {
		t.Error(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	lastRev, err := ws.StopAtCurrent(sctx)
	scancel()
	if err != nil {
		t.Errorf("watchers: %v", err)
	}
	// Without the event log failed writes stay open to the end: still
	// sound, only slower to check.
	log := ws.Log()
	if log == nil {
		t.Logf("event log incomplete, failed writes left unsettled")
	}
	ops := rec.Operations(log)
	recorded, failed := rec.counts()
	timeout := *checkTimeoutFlag
	if timeout == 0 {
		timeout = 30*time.Second + 2*duration
	}
	model := Model(initialRev)
	start := time.Now()
	res, info := Check(model, ops, timeout)
	t.Logf("scenario %s, seed %d: %d operations recorded (%d failed on the client), %d checked, faults injected %v, check took %v: %s",
		name, seed, recorded, failed, len(ops), injected, time.Since(start).Round(time.Millisecond), res)
	t.Logf("checked: %s; last revision %d", Summary(ops), lastRev)
	if log != nil {
		t.Logf("event log: %d events, revisions %d to %d", len(log.Events), log.From+1, log.To)
	}
	for _, r := range ws.Records() {
		t.Logf("watcher %d: %d events in %d responses, resumed on another member %d times, restarted after losing the leader %d times",
			r.ID, len(r.Events), len(r.Responses), r.Resumes(), r.NoLeader)
	}
	for _, err := range CheckWatches(ws, log, ops) {
		t.Error(err)
	}
	if log != nil {
		for _, err := range CheckSnapshots(snapshots, log) {
			t.Error(err)
		}
	}
	if len(injected) == 0 && duration >= maxFaultGap {
		t.Errorf("no fault was injected")
	}
	if len(ops) < 100 {
		t.Errorf("only %d operations checked; the workload made no progress", len(ops))
	}
	if res == porcupine.Ok && !t.Failed() {
		return
	}
	dir := filepath.Join(repoRoot(), "results", fmt.Sprintf("%s-seed%d-%s", strings.ReplaceAll(t.Name(), "/", "-"), seed, time.Now().Format("20060102-150405")))
	if err := WriteResults(dir, model, ops, info); err != nil {
		t.Errorf("write results: %v", err)
	}
	if err := writeWatchResults(dir, log, ws.Records()); err != nil {
		t.Errorf("write results: %v", err)
	}
	if err := c.writeLogs(dir); err != nil {
		t.Errorf("write results: %v", err)
	}
	switch res {
	case porcupine.Ok:
		t.Logf("history, event log and watch streams in %s", dir)
	case porcupine.Illegal:
		t.Errorf("history is NOT linearizable (seed %d); history and visualisation in %s", seed, dir)
	default:
		// A search that runs out of time has found no violation; it is
		// reported, not failed, so a loaded machine does not make the
		// suite flaky.
		t.Logf("linearizability check inconclusive after %v (seed %d); history in %s", timeout, seed, dir)
	}
}

// writeWatchResults keeps, next to a failed run's history, the event log
// and what each watcher received, for the watch checks' verdicts.
func writeWatchResults(dir string, log *EventLog, recs []WatchRecord) error {
	for name, v := range map[string]any{"events.json": log, "watchers.json": recs} {
		b, err := json.MarshalIndent(v, "", " ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// injectFaults draws faults from fs at random gaps until end and returns
// how many of each it injected. It runs on the test goroutine, as the
// framework may call t.Fatal while restarting a member.
func injectFaults(t *testing.T, c *cluster, fs []fault, rng *rand.Rand, end time.Time) map[string]int {
	injected := map[string]int{}
	for n := 1; ; n++ {
		gap := between(rng, minFaultGap, maxFaultGap)
		if time.Now().Add(gap).After(end) {
			break
		}
		time.Sleep(gap)
		f := fs[rng.Intn(len(fs))]
		what, err := f.inject(c, rng)
		if err != nil {
			t.Fatalf("fault %d (%s): %v", n, f.name, err)
		}
		injected[f.name]++
		t.Logf("fault %d (%s): %s", n, f.name, what)
	}
	time.Sleep(time.Until(end))
	return injected
}

// currentRevision reads the cluster's revision before the workload
// starts: the model's initial state.
func currentRevision(t *testing.T, eps []string) int64 {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "key", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("new cluster already holds %d workload keys", len(resp.Kvs))
	}
	return resp.Header.Revision
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
