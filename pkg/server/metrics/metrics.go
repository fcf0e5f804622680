// Package metrics is a member's Prometheus registry: the kvd_* series an
// operator scrapes from /metrics, plus Go's and the process's own.
//
// Nothing below it imports this package. Counters that parts of the server
// keep anyway (indexes, leader changes) and sizes they can report (the
// database, keys, watchers, leases) are read through the functions in
// Sources when a scrape comes, so writes pay nothing for them; what must
// be recorded as it happens (durations, failures) is handed in through
// the Observe methods, which the server wires to its parts as callbacks.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are read at scrape time; a nil one leaves its series out.
type Sources struct {
	// CommittedIndex and AppliedIndex are raft's commit index and the
	// last entry the state machine applied.
	CommittedIndex func() uint64
	AppliedIndex   func() uint64
	// PendingProposals counts proposals waiting to be applied.
	PendingProposals func() int
	// LeaderChanges counts the leaders this member has seen since start.
	LeaderChanges func() uint64
	HasLeader     func() bool
	IsLeader      func() bool
	IsLearner     func() bool
	// DBSize is the database file's size; DBSizeInUse leaves free pages
	// out.
	DBSize      func() int64
	DBSizeInUse func() int64
	// Keys counts the keys in the index.
	Keys func() int
	// Watchers counts watchers, SlowWatchers those catching up from the
	// database, WatchStreams the open watch streams.
	Watchers     func() int
	SlowWatchers func() int
	WatchStreams func() int
	// Leases counts the leases granted and not yet revoked or expired.
	Leases func() int
}

// Options choose how much is recorded.
type Options struct {
	// Extensive adds the gRPC handling-time histograms, as etcd's
	// --metrics=extensive.
	Extensive bool
}

// Metrics holds a member's registry and the series recorded as things
// happen. A nil *Metrics records nothing, so tests may leave it out.
type Metrics struct {
	reg *prometheus.Registry

	walSync         prometheus.Histogram
	backendCommit   prometheus.Histogram
	snapshotSave    prometheus.Histogram
	backendSnapshot prometheus.Histogram
	defrag          prometheus.Histogram
	proposalsFailed prometheus.Counter
	batches         prometheus.Counter
	batched         prometheus.Counter
	slowApply       prometheus.Counter
	readIndexFailed prometheus.Counter

	grpc   *grpcMetrics
	health *healthMetrics
}

// New builds the registry: src's series, the recorded ones, the gRPC
// ones, and the Go runtime and process collectors (process_* is what
// `etcdctl check datascale` reads for memory).
func New(src Sources, opts Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.walSync = m.histogram("disk", "wal_fsync_duration_seconds",
		"Latency of the WAL's fdatasync calls, one per raft Ready batch that carries entries.", diskBuckets)
	m.backendCommit = m.histogram("disk", "backend_commit_duration_seconds",
		"Latency of the database's batch commits.", diskBuckets)
	m.backendSnapshot = m.histogram("disk", "backend_snapshot_duration_seconds",
		"Time taken to write a snapshot of the database (to a client or a peer).", longBuckets)
	m.defrag = m.histogram("disk", "backend_defrag_duration_seconds",
		"Time taken to defragment the database.", longBuckets)
	m.snapshotSave = m.histogram("snap", "save_total_duration_seconds",
		"Time taken to record a raft snapshot, from committing the database to releasing the WAL behind it.", diskBuckets)
	m.proposalsFailed = m.counter("server", "proposals_failed_total", "Proposals that failed: not accepted by raft, or timed out.")
	m.batches = m.counter("server", "proposal_batches_total", "Hand-offs to raft that carried more than one proposal.")
	m.batched = m.counter("server", "proposals_batched_total", "Proposals handed to raft together with others, in the hand-offs counted by proposal_batches_total.")
	m.slowApply = m.counter("server", "slow_apply_total", "Entries whose apply took longer than --warning-apply-duration.")
	m.readIndexFailed = m.counter("server", "read_indexes_failed_total", "ReadIndex rounds (linearizable read barriers) that failed or timed out.")
	m.registerSources(src)
	m.grpc = newGRPCMetrics(m.reg, opts.Extensive)
	m.health = newHealthMetrics(m.reg)
	return m
}

// Registry is where a part of the server with series of its own (a
// feature built later) may register them.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// diskBuckets are etcd's for fsync and commit: 1ms to about 8s.
var diskBuckets = prometheus.ExponentialBuckets(0.001, 2, 14)

// longBuckets are etcd's for snapshots and defragmentation: 10ms to
// about 6.8 minutes.
var longBuckets = prometheus.ExponentialBuckets(0.01, 2, 16)

func (m *Metrics) histogram(sub, name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "kvd", Subsystem: sub, Name: name, Help: help, Buckets: buckets})
	m.reg.MustRegister(h)
	return h
}

func (m *Metrics) counter(sub, name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kvd", Subsystem: sub, Name: name, Help: help})
	m.reg.MustRegister(c)
	return c
}

func (m *Metrics) registerSources(src Sources) {
	gauge := func(sub, name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kvd", Subsystem: sub, Name: name, Help: help}, f))
	}
	counter := func(sub, name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "kvd", Subsystem: sub, Name: name, Help: help}, f))
	}
	if f := src.CommittedIndex; f != nil {
		gauge("server", "proposals_committed_total", "The raft commit index: entries committed so far.", func() float64 { return float64(f()) })
	}
	if f := src.AppliedIndex; f != nil {
		gauge("server", "proposals_applied_total", "The index of the last entry applied to the state machine.", func() float64 { return float64(f()) })
	}
	if f := src.PendingProposals; f != nil {
		gauge("server", "proposals_pending", "Proposals made on this member that have not applied yet.", func() float64 { return float64(f()) })
	}
	if f := src.LeaderChanges; f != nil {
		counter("server", "leader_changes_seen_total", "Leaders this member has seen since it started.", func() float64 { return float64(f()) })
	}
	if f := src.HasLeader; f != nil {
		gauge("server", "has_leader", "1 while this member knows a leader, 0 otherwise.", boolFunc(f))
	}
	if f := src.IsLeader; f != nil {
		gauge("server", "is_leader", "1 while this member is the leader, 0 otherwise.", boolFunc(f))
	}
	if f := src.IsLearner; f != nil {
		gauge("server", "is_learner", "1 while this member is a learner, 0 otherwise.", boolFunc(f))
	}
	if f := src.DBSize; f != nil {
		gauge("mvcc", "db_total_size_in_bytes", "Size of the database file, free pages included.", func() float64 { return float64(f()) })
	}
	if f := src.DBSizeInUse; f != nil {
		gauge("mvcc", "db_total_size_in_use_in_bytes", "Size of the database's pages in use; the rest is reclaimed by defragmentation.", func() float64 { return float64(f()) })
	}
	if f := src.Keys; f != nil {
		gauge("mvcc", "keys_total", "Keys in the index, deleted ones not yet compacted away included.", intFunc(f))
	}
	if f := src.Watchers; f != nil {
		gauge("mvcc", "watcher_total", "Watchers open on this member.", intFunc(f))
	}
	if f := src.SlowWatchers; f != nil {
		gauge("mvcc", "slow_watcher_total", "Watchers behind the store, catching up from the database.", intFunc(f))
	}
	if f := src.WatchStreams; f != nil {
		gauge("mvcc", "watch_stream_total", "Watch streams open on this member.", intFunc(f))
	}
	if f := src.Leases; f != nil {
		gauge("lease", "active", "Leases granted and not yet revoked or expired.", intFunc(f))
	}
}

func boolFunc(f func() bool) func() float64 {
	return func() float64 {
		if f() {
			return 1
		}
		return 0
	}
}

func intFunc(f func() int) func() float64 { return func() float64 { return float64(f()) } }

// ObserveWALSync records one WAL fdatasync.
func (m *Metrics) ObserveWALSync(d time.Duration) {
	if m != nil {
		m.walSync.Observe(d.Seconds())
	}
}

// ObserveBackendCommit records one database batch commit.
func (m *Metrics) ObserveBackendCommit(d time.Duration) {
	if m != nil {
		m.backendCommit.Observe(d.Seconds())
	}
}

// ObserveSnapshotSave records the raft snapshot a member takes every
// --snapshot-count entries.
func (m *Metrics) ObserveSnapshotSave(d time.Duration) {
	if m != nil {
		m.snapshotSave.Observe(d.Seconds())
	}
}

// ObserveBackendSnapshot records the time taken to stream a copy of the
// database: `snapshot save` from a client, or a snapshot sent to a peer.
func (m *Metrics) ObserveBackendSnapshot(d time.Duration) {
	if m != nil {
		m.backendSnapshot.Observe(d.Seconds())
	}
}

// ObserveDefrag records one defragmentation of the database.
func (m *Metrics) ObserveDefrag(d time.Duration) {
	if m != nil {
		m.defrag.Observe(d.Seconds())
	}
}

// ProposalFailed counts a proposal that raft refused or that timed out.
func (m *Metrics) ProposalFailed() {
	if m != nil {
		m.proposalsFailed.Inc()
	}
}

// ProposalBatch counts a hand-off of n proposals to raft; a lone proposal
// is not a batch.
func (m *Metrics) ProposalBatch(n int) {
	if m != nil && n > 1 {
		m.batches.Inc()
		m.batched.Add(float64(n))
	}
}

// SlowApply counts an entry whose apply took too long.
func (m *Metrics) SlowApply() {
	if m != nil {
		m.slowApply.Inc()
	}
}

// ReadIndexFailed counts a ReadIndex round that failed.
func (m *Metrics) ReadIndexFailed() {
	if m != nil {
		m.readIndexFailed.Inc()
	}
}
