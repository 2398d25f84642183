package scheduler

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// metrics are the daemon's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg *prometheus.Registry

	lastSuccess, duration, running *prometheus.GaugeVec
	bytes                          *prometheus.GaugeVec
	failures, runs                 *prometheus.CounterVec

	drillLastSuccess, drillRTO, drillFailedChecks *prometheus.GaugeVec

	repoSize, snapshots prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	gv := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "coffer", Name: name, Help: help}, labels)
		m.reg.MustRegister(g)
		return g
	}
	cv := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "coffer", Name: name, Help: help}, []string{"job"})
		m.reg.MustRegister(c)
		return c
	}
	g := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "coffer", Name: name, Help: help})
		m.reg.MustRegister(g)
		return g
	}
	m.lastSuccess = gv("job_last_success_timestamp_seconds", "When the job's last successful run ended (Unix time).", "job")
	m.duration = gv("job_last_duration_seconds", "How long the job's last run took.", "job")
	m.running = gv("job_running", "1 while the job runs on this daemon.", "job")
	m.bytes = gv("job_last_bytes", "Bytes of the job's last backup: read from the sources, new (not deduplicated), stored (compressed, encrypted).", "job", "kind")
	m.failures = cv("job_failures_total", "Failed runs (each attempt) of the job.")
	m.runs = cv("job_runs_total", "Runs (each attempt) of the job on this daemon.")
	m.drillLastSuccess = gv("drill_last_success_timestamp_seconds", "When the drill last passed (Unix time).", "drill")
	m.drillRTO = gv("drill_rto_seconds", "The recovery time the drill last measured.", "drill")
	m.drillFailedChecks = gv("drill_failed_checks", "Checks that failed in the drill's last run.", "drill")
	m.repoSize = g("repository_size_bytes", "Bytes stored in the repository.")
	m.snapshots = g("repository_snapshots", "Snapshots in the repository.")
	m.reg.MustRegister(collectors.NewGoCollector())
	return m
}

// handler serves /metrics, /healthz (the daemon runs) and /readyz (its
// configuration is loaded and its storage reachable).
func (d *Daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		ready, st := d.ready, d.store
		d.mu.Unlock()
		if !ready {
			http.Error(w, "configuration not loaded", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if _, err := st.Stat(ctx, repo.ConfigName(1)); err != nil {
			http.Error(w, "storage not reachable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}

// RepositoryStats measures a repository's store: the bytes of all its
// objects and the number of its snapshots (manifests).
func RepositoryStats(ctx context.Context, st storage.Store) (size int64, snapshots int, err error) {
	err = st.List(ctx, "", func(fi storage.ObjectInfo) error {
		size += fi.Size
		if len(fi.Name) > len(repo.SnapshotsPrefix) && fi.Name[:len(repo.SnapshotsPrefix)] == repo.SnapshotsPrefix {
			snapshots++
		}
		return nil
	})
	return size, snapshots, err
}
