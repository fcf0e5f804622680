package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
)

// /health, /livez and /readyz answer as etcd v3.7.3's do, byte for byte,
// since load balancers, Kubernetes probes and etcdctl read them:
//
//   - /health is JSON {"health":"true|false","reason":...}: an active alarm
//     (unless named by ?exclude=), no leader (unless ?serializable=true),
//     or a failed read makes it false, with status 503.
//   - /livez and /readyz run named checks, each also served alone under
//     its own path; ?exclude=<check> skips one, ?verbose lists each
//     result. A failure is always listed, with status 503.
//
// etcd lists the checks in random order (it walks a Go map); kvd lists
// them in the order below, which is one of etcd's.

// Probe runs the reads behind the health checks.
type Probe interface {
	// ProbeRead reads the local store as a health check does, without
	// permission checks: at once when serializable, otherwise after
	// confirming with the leader that nothing newer was committed.
	ProbeRead(ctx context.Context, serializable bool) error
	// IsLearner says whether this member is a learner.
	IsLearner() bool
}

// Alarms lists the cluster's active alarms.
type Alarms interface {
	ActiveAlarms() []*pb.AlarmMember
}

// HealthObserver hears the outcome of each /health answer and of each
// check /livez and /readyz run (kind "livez" or "readyz"), for metrics.
type HealthObserver interface {
	HealthAnswered(ok bool)
	HealthChecked(kind, name string, ok bool)
}

type noHealthObserver struct{}

func (noHealthObserver) HealthAnswered(bool)                {}
func (noHealthObserver) HealthChecked(string, string, bool) {}

type health struct {
	probe     Probe
	alarms    Alarms
	hasLeader func() bool
	timeout   time.Duration
	lg        *slog.Logger
	seen      HealthObserver
}

func newHealth(cfg Config) *health {
	h := &health{probe: cfg.Probe, alarms: cfg.Alarms, hasLeader: cfg.HasLeader, lg: cfg.Logger,
		// etcd's request timeout: a base plus two elections.
		timeout: 5*time.Second + 2*cfg.ElectionTimeout}
	if h.hasLeader == nil {
		h.hasLeader = func() bool { return true }
	}
	if h.lg == nil {
		h.lg = slog.New(slog.DiscardHandler)
	}
	h.seen = cfg.HealthSeen
	if h.seen == nil {
		h.seen = noHealthObserver{}
	}
	return h
}

// check is one named check of /livez or /readyz: nil when it passes.
type check struct {
	name string
	run  func(ctx context.Context) error
}

func (h *health) install(mux *http.ServeMux) {
	mux.HandleFunc("/health", h.serveHealth)
	serializable := check{"serializable_read", func(ctx context.Context) error { return h.read(ctx, true) }}
	h.installChecks(mux, "livez", []check{serializable})
	h.installChecks(mux, "readyz", []check{
		{"data_corruption", h.alarmCheck(pb.AlarmType_CORRUPT)},
		serializable,
		{"linearizable_read", func(ctx context.Context) error { return h.read(ctx, false) }},
		{"non_learner", func(context.Context) error {
			if h.probe.IsLearner() {
				return fmt.Errorf("not supported for learner")
			}
			return nil
		}},
	})
}

// healthAnswer is /health's JSON.
type healthAnswer struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

func (h *health) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	a := h.healthOf(r.Context(), querySet(r, "exclude"), r.URL.Query().Get("serializable") == "true")
	h.seen.HealthAnswered(a.Health == "true")
	b, _ := json.Marshal(a)
	if a.Health != "true" {
		h.lg.Warn("/health error", "output", string(b), "status-code", http.StatusServiceUnavailable)
		http.Error(w, string(b), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (h *health) healthOf(ctx context.Context, excluded map[string]bool, serializable bool) healthAnswer {
	for _, a := range h.activeAlarms() {
		if excluded[a.Alarm.String()] {
			continue
		}
		switch a.Alarm {
		case pb.AlarmType_NOSPACE:
			return healthAnswer{"false", "ALARM NOSPACE"}
		case pb.AlarmType_CORRUPT:
			return healthAnswer{"false", "ALARM CORRUPT"}
		default:
			return healthAnswer{"false", "ALARM UNKNOWN"}
		}
	}
	if !serializable && !h.hasLeader() {
		return healthAnswer{"false", "RAFT NO LEADER"}
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	if err := h.read(ctx, serializable); err != nil {
		return healthAnswer{"false", "RANGE ERROR:" + err.Error()}
	}
	return healthAnswer{"true", ""}
}

func (h *health) activeAlarms() []*pb.AlarmMember {
	if h.alarms == nil {
		return nil
	}
	return h.alarms.ActiveAlarms()
}

func (h *health) alarmCheck(t pb.AlarmType) func(context.Context) error {
	return func(context.Context) error {
		for _, a := range h.activeAlarms() {
			if a.Alarm == t {
				return fmt.Errorf("alarm activated: %s", t)
			}
		}
		return nil
	}
}

// read runs the probe's read; its error reads as etcd's server error,
// without the gRPC status wrapping.
func (h *health) read(ctx context.Context, serializable bool) error {
	err := h.probe.ProbeRead(ctx, serializable)
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return fmt.Errorf("%s", s.Message())
	}
	return err
}

// installChecks serves /kind (all checks, less those excluded) and
// /kind/<name> (that check alone).
func (h *health) installChecks(mux *http.ServeMux, kind string, checks []check) {
	root := "/" + kind
	mux.HandleFunc(root, func(w http.ResponseWriter, r *http.Request) {
		excluded := querySet(r, "exclude")
		var run []check
		for _, c := range checks {
			if excluded[c.name] {
				delete(excluded, c.name)
				continue
			}
			run = append(run, c)
		}
		if len(excluded) > 0 {
			// As etcd: excluding a check that does not exist is not an
			// error, for compatibility across versions.
			h.lg.Warn("some health checks cannot be excluded", "missing-health-checks", quotedKeys(excluded))
		}
		h.serveChecks(w, r, kind, root, run)
	})
	for _, c := range checks {
		path := root + "/" + c.name
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { h.serveChecks(w, r, kind, path, []check{c}) })
	}
}

func (h *health) serveChecks(w http.ResponseWriter, r *http.Request, kind, path string, checks []check) {
	if !onlyGET(w, r) {
		return
	}
	var out strings.Builder
	failed := false
	for _, c := range checks {
		err := c.run(r.Context())
		h.seen.HealthChecked(kind, c.name, err == nil)
		if err != nil {
			fmt.Fprintf(&out, "[-]%s failed: %v\n", c.name, err)
			failed = true
		} else {
			fmt.Fprintf(&out, "[+]%s ok\n", c.name)
		}
	}
	if failed {
		h.lg.Error("Health check error", "path", path, "reason", out.String(), "status-code", http.StatusServiceUnavailable)
		http.Error(w, out.String(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if _, verbose := r.URL.Query()["verbose"]; verbose {
		_, _ = fmt.Fprint(w, out.String())
	}
	_, _ = fmt.Fprint(w, "ok\n")
}

// onlyGET refuses other methods as etcd does.
func onlyGET(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true
	}
	w.Header().Set("Allow", http.MethodGet)
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	return false
}

// querySet is the set of a query parameter's non-empty values.
func querySet(r *http.Request, name string) map[string]bool {
	set := map[string]bool{}
	for _, v := range r.URL.Query()[name] {
		if v != "" {
			set[v] = true
		}
	}
	return set
}

func quotedKeys(set map[string]bool) string {
	q := make([]string, 0, len(set))
	for k := range set {
		q = append(q, fmt.Sprintf("%q", k))
	}
	return strings.Join(q, ",")
}
