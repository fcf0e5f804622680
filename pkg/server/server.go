// Package server wires one kvd member together: the raft node, the backend
// database with its MVCC store and applier, the member list, and the client
// API. It owns start-up and shut-down, and it is where a request becomes a
// raft proposal and where committed entries are applied in log order.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/kvd-io/kvd/pkg/server/api"
	"github.com/kvd-io/kvd/pkg/server/apply"
	"github.com/kvd-io/kvd/pkg/server/auth"
	"github.com/kvd-io/kvd/pkg/server/backend"
	"github.com/kvd-io/kvd/pkg/server/lease"
	"github.com/kvd-io/kvd/pkg/server/membership"
	"github.com/kvd-io/kvd/pkg/server/metrics"
	"github.com/kvd-io/kvd/pkg/server/mvcc"
	"github.com/kvd-io/kvd/pkg/server/raftnode"
)

// Server is one running kvd member.
type Server struct {
	cfg Config
	lg  *slog.Logger

	be    *backend.Backend
	store *mvcc.Store
	// watchable delivers the store's changes to watchers.
	watchable *mvcc.Watchable
	applier   *apply.Applier
	// quota bounds the database size writes may grow it to.
	quota  apply.Quota
	lessor *lease.Lessor
	auth   *auth.Store
	// authChanged fires as each change of users, roles or permissions
	// applies, for open watches to be checked again.
	authChanged changeSignal
	node        *raftnode.Node
	cluster     *membership.Cluster

	ids     idGen
	waits   waitRegistry
	batch   *batcher
	confMu  sync.Mutex // the leader makes one membership change at a time
	failc   chan error // the apply loop cannot go on
	applied appliedIndex
	reads   *readLoop
	// leadingApplied is the term in which this member, as leader, applied
	// its own first entry, and with it everything committed before.
	leadingApplied atomic.Uint64

	// Owned by the apply loop.
	snapIndex       uint64
	logCompactIndex uint64
	confState       confStateHolder

	listeners        []net.Listener
	peerListeners    []net.Listener
	metricsListeners []net.Listener
	metrics          *metrics.Metrics
	tls              tlsSetup
	transport        *raftnode.HTTPTransport
	// peers bootstraps raft on a member's first start.
	peers []raft.Peer

	stopOnce sync.Once
	stopc    chan struct{}
	wg       sync.WaitGroup
	readyc   chan struct{}
}

// New opens (or creates) the member's data and starts its raft node. It
// binds the client listeners, so a port conflict fails here rather than
// after the member has joined. Call Run to serve, or Close to give up.
func New(cfg Config) (*Server, error) { return NewContext(context.Background(), cfg) }

// NewContext is New whose waiting, for discovery on a first start, ends
// with ctx.
func NewContext(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, lg: cfg.Logger, stopc: make(chan struct{}), readyc: make(chan struct{}), failc: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.metrics = s.newMetrics()
	if err := os.MkdirAll(cfg.memberDir(), 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	if err := s.setupTLS(); err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	boot, err := s.openRaft(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.openStorage(); err != nil {
		return nil, err
	}
	if err := s.openCluster(boot); err != nil {
		return nil, err
	}
	// A new member has nothing to compare yet.
	if cfg.InitialCorruptCheck && !boot.fresh {
		if err := s.initialCorruptCheck(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) listen() error {
	for _, raw := range s.cfg.ListenPeerURLs {
		l, err := listenURL(raw, s.tls.peerServer)
		if err != nil {
			return fmt.Errorf("peer %w", err)
		}
		s.peerListeners = append(s.peerListeners, l)
	}
	for _, raw := range s.cfg.ListenClientURLs {
		l, err := listenURL(raw, s.tls.client)
		if err != nil {
			return fmt.Errorf("client %w", err)
		}
		s.listeners = append(s.listeners, l)
	}
	for _, raw := range s.cfg.ListenMetricsURLs {
		// An https metrics URL serves plain HTTP/1.1 over the client
		// certificate, as etcd's.
		var cfg *tls.Config
		if s.tls.client != nil {
			cfg = s.tls.client.Clone()
			cfg.GetConfigForClient, cfg.NextProtos = nil, nil
		}
		l, err := listenURL(raw, cfg)
		if err != nil {
			return fmt.Errorf("metrics %w", err)
		}
		s.metricsListeners = append(s.metricsListeners, l)
	}
	return nil
}

// listenURL listens on raw's host; an https URL's connections are TLS
// with cfg, which setupTLS has made sure exists. Handshakes happen on
// the connections' first reads, off the accept loop.
func listenURL(raw string, cfg *tls.Config) (net.Listener, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse listen URL %q: %w", raw, err)
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", raw, err)
	}
	if u.Scheme == "https" {
		if cfg == nil {
			l.Close()
			return nil, fmt.Errorf("listen URL %q: no TLS certificate configured", raw)
		}
		return tls.NewListener(l, cfg), nil
	}
	return l, nil
}

func (s *Server) openStorage() error {
	be, err := backend.Open(backend.Config{
		Path:          s.cfg.dbPath(),
		BatchInterval: s.cfg.BackendBatchInterval,
		BatchLimit:    s.cfg.BackendBatchLimit,
		Logger:        s.lg,
		OnCommit:      s.metrics.ObserveBackendCommit,
	})
	if err != nil {
		return fmt.Errorf("open backend: %w", err)
	}
	s.be = be
	store, err := mvcc.New(be, s.lg)
	if err != nil {
		return fmt.Errorf("open mvcc store: %w", err)
	}
	s.store = store
	s.watchable = mvcc.NewWatchable(store, s.lg)
	s.lessor = lease.New(lease.Config{MinTTL: s.cfg.minLeaseTTL(), CheckpointInterval: s.cfg.LeaseCheckpointInterval})
	if err := s.recoverLeases(); err != nil {
		return err
	}
	s.auth = auth.New(auth.Config{BcryptCost: s.cfg.BcryptCost, TokenTTL: s.cfg.AuthTokenTTL, Token: s.cfg.authToken})
	if err := s.recoverAuth(); err != nil {
		return err
	}
	s.applier = apply.New(store, s.lessor, s.auth, s.lg)
	s.quota = newQuota(&s.cfg)
	return s.recoverAlarms()
}

// bootstrap is what a member starting for the first time knows of its
// cluster.
type bootstrap struct {
	fresh              bool
	members            []*membership.Member
	localID, clusterID uint64
	// join is set when the member joins an existing cluster instead of
	// forming a new one.
	join bool
}

// openRaft opens the member's WAL: a new member bootstraps from the
// initial-* flags, a restarted one from its WAL, in which case those flags
// are ignored as etcd does.
func (s *Server) openRaft(ctx context.Context) (*bootstrap, error) {
	dir := s.cfg.memberDir()
	rc := raftnode.Config{
		Dir:            dir,
		CatchUpEntries: s.cfg.SnapshotCatchUpEntries,
		TickInterval:   s.cfg.HeartbeatInterval,
		ElectionTicks:  s.cfg.electionTicks(),
		HeartbeatTicks: 1,
		Logger:         s.lg,
		OnWALSync:      s.metrics.ObserveWALSync,
	}
	if gone, err := raftnode.DiscardUnstarted(dir, s.lg); err != nil {
		return nil, err
	} else if gone {
		s.lg.Warn("the WAL holds no raft state: the member stopped while bootstrapping; bootstrapping again", "dir", dir)
	}
	boot := &bootstrap{fresh: !raftnode.WALExists(dir)}
	if boot.fresh {
		if err := s.bootstrapCluster(ctx, boot); err != nil {
			return nil, err
		}
		rc.Metadata = membership.WALMetadata(boot.localID, boot.clusterID)
	}
	node, restored, err := raftnode.Open(rc)
	if err != nil {
		return nil, err
	}
	s.node = node
	s.batch = newBatcher(node, s.requestTimeout())
	s.batch.onBatch = s.metrics.ProposalBatch
	if !boot.fresh {
		if boot.localID, boot.clusterID, err = membership.ParseWALMetadata(restored.Metadata); err != nil {
			return nil, err
		}
	}
	if snap := restored.Snapshot; snap != nil {
		s.snapIndex = snap.GetMetadata().GetIndex()
		s.confState.set(snap.GetMetadata().GetConfState())
		if err := s.cfg.installPendingDB(s.snapIndex); err != nil {
			return nil, err
		}
	}
	return boot, nil
}

// openCluster sets up the member list and the peer transport, once the
// database is open.
func (s *Server) openCluster(boot *bootstrap) error {
	members := boot.members
	if !boot.fresh {
		var err error
		if members, err = loadMembers(s.be); err != nil {
			return err
		}
	}
	for _, m := range members {
		if m.ID == boot.localID {
			// A restarted member advertises what its flags say now; it
			// publishes them to the others once it has started.
			m.ClientURLs = slices.Clone(s.cfg.AdvertiseClientURLs)
		}
	}
	// A new member's list starts empty and is built by the log, whose
	// membership changes are checked against it as they apply; the
	// members known up front are only the peers to talk to.
	var listed []*membership.Member
	if !boot.fresh {
		listed = members
	}
	s.cluster = membership.NewCluster(boot.clusterID, boot.localID, listed)
	s.ids.init(boot.localID)
	s.transport = raftnode.NewHTTPTransport(boot.clusterID, boot.localID, s.cfg.snapDir(), s.lg)
	s.transport.SetTLS(s.tls.peerClient)
	s.transport.SetNode(s.node)
	s.transport.SetSnapshotSource(dbSnapshots{s.be})
	s.transport.OnRemoved(func() { s.fail(errMemberRemoved) })
	for _, m := range members {
		if m.ID != boot.localID {
			s.transport.AddPeer(m.ID, m.PeerURLs)
		}
	}
	s.node.SetTransport(s.transport)
	ci, _ := s.store.ConsistentIndex()
	s.applied.set(max(ci, s.snapIndex))
	if boot.fresh && !boot.join {
		s.peers = make([]raft.Peer, 0, len(members))
		for _, m := range members {
			b, err := m.Marshal()
			if err != nil {
				return err
			}
			s.peers = append(s.peers, raft.Peer{ID: m.ID, Context: b})
		}
	}
	s.lg.Info("member opened", "name", s.cfg.Name, "id", fmt.Sprintf("%x", boot.localID),
		"cluster-id", fmt.Sprintf("%x", boot.clusterID), "fresh", boot.fresh, "join", boot.join,
		"applied-index", s.applied.get())
	return nil
}

func (s *Server) bootstrapCluster(ctx context.Context, boot *bootstrap) error {
	if err := s.cfg.resolveInitialCluster(ctx); err != nil {
		return err
	}
	members, err := membership.ParseInitialCluster(s.cfg.InitialCluster, s.cfg.InitialClusterToken)
	if err != nil {
		return err
	}
	var self *membership.Member
	for _, m := range members {
		if m.Name == s.cfg.Name {
			self = m
		}
	}
	if self == nil {
		return fmt.Errorf("--initial-cluster %q has no member named %q (--name)", s.cfg.InitialCluster, s.cfg.Name)
	}
	if err := s.cfg.advertisedPeerURLsMatch(ctx, self.PeerURLs); err != nil {
		return err
	}
	if s.cfg.InitialClusterState == "existing" {
		return s.joinCluster(ctx, boot, members, self)
	}
	self.ClientURLs = slices.Clone(s.cfg.AdvertiseClientURLs)
	ids := make([]uint64, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	boot.members, boot.localID, boot.clusterID = members, self.ID, membership.ClusterID(ids)
	return nil
}

// joinCluster asks the other members named in --initial-cluster for the
// cluster they form, and finds this member in it by its peer URLs: it must
// have been added with `member add` first, which gave it its ID.
func (s *Server) joinCluster(ctx context.Context, boot *bootstrap, initial []*membership.Member, self *membership.Member) error {
	var others []string
	for _, m := range initial {
		if m != self {
			others = append(others, m.PeerURLs...)
		}
	}
	if len(others) == 0 {
		return errors.New("--initial-cluster-state=existing needs the peer URLs of existing members in --initial-cluster")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	clusterID, members, err := fetchCluster(ctx, s.peerClient(2*time.Second), others)
	if err != nil {
		return fmt.Errorf("join existing cluster: %w", err)
	}
	for _, m := range members {
		if slices.Equal(sortedCopy(m.PeerURLs), sortedCopy(self.PeerURLs)) {
			boot.members, boot.localID, boot.clusterID, boot.join = members, m.ID, clusterID, true
			return nil
		}
	}
	return fmt.Errorf("join existing cluster %x: no member has peer URLs %v; add this member with `member add` first", clusterID, self.PeerURLs)
}

func normalizeURLs(raw []string) []string {
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		if u, err := url.Parse(r); err == nil {
			out = append(out, u.String())
		}
	}
	slices.Sort(out)
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// Run serves clients until ctx is done, then shuts the member down
// gracefully: listeners close, in-flight requests finish, the raft loop
// stops and the database commits what was applied.
func (s *Server) Run(ctx context.Context) error {
	if err := s.node.Start(s.cluster.LocalID(), s.peers); err != nil {
		s.stop()
		return err
	}
	s.reads = newReadLoop(s)
	s.wg.Add(5)
	go func() { defer s.wg.Done(); s.applyLoop() }()
	go func() { defer s.wg.Done(); s.batch.run(s.stopc) }()
	go func() { defer s.wg.Done(); s.leaseLoop() }()
	go func() { defer s.wg.Done(); s.reads.run(s.stopc) }()
	go func() { defer s.wg.Done(); s.publish() }()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.fastForwardElection() }()
	if s.cfg.CorruptCheckTime > 0 {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.corruptCheckLoop() }()
	}
	s.startAutoCompaction()

	apiCfg := api.Config{
		KV: s, Maintenance: s, Cluster: s, Header: s, Leases: s, Auth: s,
		GRPCGo:                      s.cfg.GRPCGo,
		Identify:                    s.identify,
		Probe:                       s,
		Alarms:                      s,
		Calls:                       s.metrics,
		HealthSeen:                  s.metrics,
		Metrics:                     s.metrics.Handler(),
		Logger:                      s.lg,
		MaxRequestBytes:             int(s.cfg.MaxRequestBytes),
		MaxTxnOps:                   int(s.cfg.MaxTxnOps),
		EnablePprof:                 s.cfg.EnablePprof,
		Watcher:                     s,
		WatchProgressNotifyInterval: s.cfg.WatchProgressNotifyInterval,
		HasLeader:                   func() bool { return s.node.Leader() != 0 },
		ElectionTimeout:             s.cfg.ElectionTimeout,
	}
	gs := api.NewGRPC(apiCfg)
	serveCtx, cancel := context.WithCancel(ctx)
	if !s.cfg.DisableGateway {
		gateway, err := api.NewGateway(serveCtx, gs)
		if err != nil {
			cancel()
			s.stop()
			return err
		}
		apiCfg.Gateway = gateway
	}
	if s.cfg.EnableDiscoveryService {
		apiCfg.Discovery = s.discoveryService(serveCtx)
	}
	h := api.NewHTTP(apiCfg)
	errc := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		go func() { errc <- api.Serve(serveCtx, l, gs, h, s.lg) }()
	}
	peerSrv := &http.Server{Handler: s.peerHandler(), ReadHeaderTimeout: 10 * time.Second}
	for _, l := range s.peerListeners {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = peerSrv.Serve(l) }()
	}
	defer peerSrv.Close()
	metricsSrv := &http.Server{Handler: api.NewMetricsHTTP(apiCfg), ReadHeaderTimeout: 10 * time.Second}
	for _, l := range s.metricsListeners {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = metricsSrv.Serve(l) }()
	}
	close(s.readyc)
	s.lg.Info("serving client requests", "urls", s.cfg.ListenClientURLs)

	var err error
	pending := len(s.listeners)
	select {
	case <-ctx.Done():
		s.handOverLeadership()
	case err = <-errc:
		pending--
	case err = <-s.failc:
	}
	cancel()
	peerSrv.Close()
	metricsSrv.Close() // before the storage closes: a scrape reads it
	for range pending {
		if e := <-errc; e != nil && err == nil {
			err = e
		}
	}
	s.stop()
	return err
}

// fail ends Run with err, for trouble that leaves the member unable to go
// on, such as having been removed from the cluster.
func (s *Server) fail(err error) {
	select {
	case s.failc <- err:
	default:
	}
}

// isLearner says whether this member is a learner, which serves only
// serializable reads.
func (s *Server) isLearner() bool { return s.cluster.LocalIsLearner() }

// Ready is closed once the member serves clients.
func (s *Server) Ready() <-chan struct{} { return s.readyc }

func (s *Server) stop() {
	s.stopOnce.Do(func() {
		close(s.stopc)
		s.node.Stop()
		s.transport.Stop()
		s.wg.Wait()
		s.tls.peerHTTP.CloseIdleConnections()
		s.waits.failAll(errStopped)
		s.closeStorage()
	})
}

// Close releases a server that was created but never run.
func (s *Server) Close() {
	s.closeListeners()
	if s.node != nil {
		s.node.Stop()
	}
	if s.transport != nil {
		s.transport.Stop()
	}
	if s.tls.peerHTTP != nil {
		s.tls.peerHTTP.CloseIdleConnections()
	}
	s.closeStorage()
}

func (s *Server) closeListeners() {
	for _, l := range slices.Concat(s.listeners, s.peerListeners, s.metricsListeners) {
		l.Close()
	}
}

func (s *Server) closeStorage() {
	if s.watchable != nil {
		s.watchable.Stop()
		s.watchable = nil
	}
	if s.store != nil {
		s.store.Close()
		s.store = nil
	}
	if s.be != nil {
		if err := s.be.Close(); err != nil {
			s.lg.Warn("close backend", "err", err)
		}
		s.be = nil
	}
}
