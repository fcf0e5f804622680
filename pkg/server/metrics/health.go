package metrics

import "github.com/prometheus/client_golang/prometheus"

// The outcomes of the health endpoints, as etcd counts them: /health
// answers by outcome, and each check of /livez and /readyz by kind
// ("livez", "readyz"), name and status ("success", "error"), with a gauge
// holding each check's last result.
type healthMetrics struct {
	success, failures prometheus.Counter
	last              *prometheus.GaugeVec
	checks            *prometheus.CounterVec
}

func newHealthMetrics(reg prometheus.Registerer) *healthMetrics {
	h := &healthMetrics{
		success: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kvd", Subsystem: "server", Name: "health_success",
			Help: "/health requests answered healthy."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kvd", Subsystem: "server", Name: "health_failures",
			Help: "/health requests answered unhealthy."}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "kvd", Subsystem: "server", Name: "healthcheck",
			Help: "The last result of each /livez and /readyz check: 1 passed, 0 failed."}, []string{"type", "name"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kvd", Subsystem: "server", Name: "healthchecks_total",
			Help: "/livez and /readyz checks run, by result."}, []string{"type", "name", "status"}),
	}
	reg.MustRegister(h.success, h.failures, h.last, h.checks)
	return h
}

// HealthAnswered counts a /health answer.
func (m *Metrics) HealthAnswered(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.health.success.Inc()
	} else {
		m.health.failures.Inc()
	}
}

// HealthChecked records one check of /livez or /readyz (kind).
func (m *Metrics) HealthChecked(kind, name string, ok bool) {
	if m == nil {
		return
	}
	status, v := "error", 0.0
	if ok {
		status, v = "success", 1
	}
	m.health.last.WithLabelValues(kind, name).Set(v)
	m.health.checks.WithLabelValues(kind, name, status).Inc()
}
