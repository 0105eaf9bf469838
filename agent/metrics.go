package agent

import (
	"io/fs"
	"net/http"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the agent's Prometheus metrics, in a registry of its own (no global state, so two
// agents in one process, as in tests, keep theirs apart).
type metrics struct {
	registry        *prometheus.Registry
	podStart        prometheus.Histogram
	syncDuration    prometheus.Histogram
	runningPods     prometheus.Gauge
	runningCtrs     prometheus.Gauge
	restarts        prometheus.Counter
	imagePulls      *prometheus.CounterVec
	imagePullTime   prometheus.Histogram
	containerLogSum prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		podStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "podagent_pod_start_duration_seconds",
			Help:    "Time from a pod's creation to all its containers running for the first time, as the kubelet's kubelet_pod_start_duration_seconds.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300},
		}),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "podagent_pod_sync_duration_seconds",
			Help:    "Duration of one sync of one pod by its worker.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		runningPods: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podagent_running_pods", Help: "Pods whose sandbox runs.",
		}),
		runningCtrs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podagent_running_containers", Help: "App containers that run.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podagent_container_restarts_total", Help: "Containers started again after an earlier instance ended.",
		}),
		imagePulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podagent_image_pulls_total", Help: "Image pulls, by result (success, failure).",
		}, []string{"result"}),
		imagePullTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "podagent_image_pull_duration_seconds",
			Help:    "Duration of successful image pulls.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8),
		}),
		containerLogSum: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podagent_container_log_bytes",
			Help: "Bytes of container logs on disk (written by the log drivers, after rotation).",
		}),
	}
	m.registry.MustRegister(m.podStart, m.syncDuration, m.runningPods, m.runningCtrs, m.restarts, m.imagePulls,
		m.imagePullTime, m.containerLogSum,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// MetricsHandler serves the agent's metrics in the Prometheus exposition format.
// MetricsGatherer is the agent's metrics registry.
func (a *Agent) MetricsGatherer() prometheus.Gatherer { return a.metrics.registry }

func (a *Agent) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{})
}

// logBytes is the size of every container log file under dir.
func logBytes(dir string) float64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return float64(total)
}
