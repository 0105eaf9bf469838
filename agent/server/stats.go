package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// serveStatsSummary serves GET and POST /stats/summary as the kubelet: the Summary as JSON,
// ?only_cpu_and_memory=true keeping only CPU and memory (what metrics-server once read), 500
// "Internal Error: ..." when the host fails.
func (s *Server) serveStatsSummary(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeErrorString(w, http.StatusInternalServerError, fmt.Sprintf("Internal Error: parse form failed: %v", err))
		return
	}
	sum, err := s.summary(r.Context())
	if err != nil {
		slog.Warn("kubelet server: stats summary", "err", err)
		writeErrorString(w, http.StatusInternalServerError, fmt.Sprintf("Internal Error: %v", err))
		return
	}
	if v, ok := r.Form["only_cpu_and_memory"]; ok && len(v) == 1 && v[0] == "true" {
		sum = cpuAndMemoryOnly(sum)
	}
	writeJSON(w, sum)
}

// summary is the host's summary with the node name and the CPU rates filled in.
func (s *Server) summary(ctx context.Context) (*statsapi.Summary, error) {
	sum, err := s.host.Stats(ctx)
	if err != nil {
		return nil, fmt.Errorf("stats of node %s: %w", s.nodeName, err)
	}
	if sum == nil {
		sum = &statsapi.Summary{}
	}
	if sum.Node.NodeName == "" {
		sum.Node.NodeName = s.nodeName
	}
	s.usage.fill(sum)
	return sum, nil
}

// cpuAndMemoryOnly is the summary cut down as the kubelet's GetCPUAndMemoryStats.
func cpuAndMemoryOnly(in *statsapi.Summary) *statsapi.Summary {
	out := &statsapi.Summary{Node: statsapi.NodeStats{
		NodeName: in.Node.NodeName, StartTime: in.Node.StartTime, CPU: in.Node.CPU, Memory: in.Node.Memory, Swap: in.Node.Swap,
	}}
	for _, sc := range in.Node.SystemContainers {
		out.Node.SystemContainers = append(out.Node.SystemContainers, statsapi.ContainerStats{
			Name: sc.Name, StartTime: sc.StartTime, CPU: sc.CPU, Memory: sc.Memory, Swap: sc.Swap})
	}
	for _, p := range in.Pods {
		op := statsapi.PodStats{PodRef: p.PodRef, StartTime: p.StartTime, CPU: p.CPU, Memory: p.Memory, Swap: p.Swap}
		for _, c := range p.Containers {
			op.Containers = append(op.Containers, statsapi.ContainerStats{
				Name: c.Name, StartTime: c.StartTime, CPU: c.CPU, Memory: c.Memory, Swap: c.Swap})
		}
		out.Pods = append(out.Pods, op)
	}
	return out
}

// usageCache turns cumulative CPU usage into usageNanoCores, as the kubelet's CRI stats
// provider: the rate since an earlier sample of the same node, pod or container instance.
type usageCache struct {
	// minWindow is the shortest span a rate is computed over once there is an older sample:
	// the kept sample is replaced only by one at least that much newer, so that two scrapers a
	// second apart do not make each other's rates noisy. 10s is the kubelet's housekeeping period.
	minWindow time.Duration
	// forget drops samples of what has not been seen for that long (a removed pod).
	forget time.Duration

	mu      sync.Mutex
	samples map[string]cpuSample
}

type cpuSample struct {
	at    time.Time
	usage uint64
	seen  time.Time
}

func newUsageCache() *usageCache {
	return &usageCache{minWindow: 10 * time.Second, forget: 5 * time.Minute, samples: map[string]cpuSample{}}
}

// fill sets usageNanoCores on every CPU stat of sum that has none.
func (c *usageCache) fill(sum *statsapi.Summary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.rate("node", sum.Node.CPU, now)
	for _, sc := range sum.Node.SystemContainers {
		c.rate("sys/"+sc.Name, sc.CPU, now)
	}
	for _, p := range sum.Pods {
		c.rate("pod/"+p.PodRef.UID, p.CPU, now)
		for _, ctr := range p.Containers {
			// The start time tells instances apart: a restarted container's counter starts again.
			c.rate(fmt.Sprintf("ctr/%s/%s/%d", p.PodRef.UID, ctr.Name, ctr.StartTime.UnixNano()), ctr.CPU, now)
		}
	}
	for k, s := range c.samples {
		if now.Sub(s.seen) > c.forget {
			delete(c.samples, k)
		}
	}
}

func (c *usageCache) rate(key string, cpu *statsapi.CPUStats, now time.Time) {
	if cpu == nil || cpu.UsageCoreNanoSeconds == nil {
		return
	}
	cur := cpuSample{at: cpu.Time.Time, usage: *cpu.UsageCoreNanoSeconds, seen: now}
	if cur.at.IsZero() {
		cur.at = now
	}
	prev, ok := c.samples[key]
	if !ok || cur.usage < prev.usage || !cur.at.After(prev.at) {
		c.samples[key] = cur // first sample, or the counter went back: no rate yet
		return
	}
	if cpu.UsageNanoCores == nil {
		nano := uint64(float64(cur.usage-prev.usage) / float64(cur.at.Sub(prev.at).Nanoseconds()) * 1e9)
		cpu.UsageNanoCores = &nano
	}
	if cur.at.Sub(prev.at) >= c.minWindow {
		c.samples[key] = cur
	} else {
		prev.seen = now
		c.samples[key] = prev
	}
}

// serveMetrics serves /metrics: the registry the agent passed in.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
}

// serveResourceMetrics serves /metrics/resource, the kubelet's resource metrics that
// metrics-server scrapes, from the summary of this scrape.
func (s *Server) serveResourceMetrics(w http.ResponseWriter, r *http.Request) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&resourceCollector{ctx: r.Context(), summary: s.summary})
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
}

// The kubelet's resource metrics (pkg/kubelet/metrics/collectors/resource_metrics.go), their
// help with component-base's stability prefix. The kubelet's "scrape_error" was deprecated in
// 1.29 and is hidden since 1.30; resource_scrape_error is the one it serves.
var (
	nodeCPUUsageDesc = prometheus.NewDesc("node_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the node in core-seconds", nil, nil)
	nodeMemoryUsageDesc = prometheus.NewDesc("node_memory_working_set_bytes",
		"[STABLE] Current working set of the node in bytes", nil, nil)
	nodeSwapUsageDesc = prometheus.NewDesc("node_swap_usage_bytes",
		"[ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems", nil, nil)
	containerCPUUsageDesc = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the container in core-seconds", []string{"container", "pod", "namespace"}, nil)
	containerMemoryUsageDesc = prometheus.NewDesc("container_memory_working_set_bytes",
		"[STABLE] Current working set of the container in bytes", []string{"container", "pod", "namespace"}, nil)
	containerSwapUsageDesc = prometheus.NewDesc("container_swap_usage_bytes",
		"[ALPHA] Current amount of the container swap usage in bytes. Reported only on non-windows systems", []string{"container", "pod", "namespace"}, nil)
	containerStartTimeDesc = prometheus.NewDesc("container_start_time_seconds",
		"[STABLE] Start time of the container since unix epoch in seconds", []string{"container", "pod", "namespace"}, nil)
	podCPUUsageDesc = prometheus.NewDesc("pod_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the pod in core-seconds", []string{"pod", "namespace"}, nil)
	podMemoryUsageDesc = prometheus.NewDesc("pod_memory_working_set_bytes",
		"[STABLE] Current working set of the pod in bytes", []string{"pod", "namespace"}, nil)
	podSwapUsageDesc = prometheus.NewDesc("pod_swap_usage_bytes",
		"[ALPHA] Current amount of the pod swap usage in bytes. Reported only on non-windows systems", []string{"pod", "namespace"}, nil)
	resourceScrapeErrorDesc = prometheus.NewDesc("resource_scrape_error",
		"[STABLE] 1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

// resourceCollector collects the resource metrics of one scrape. It reports only what runs now,
// with the samples' own timestamps, as the kubelet's: gauges would leak gone containers.
type resourceCollector struct {
	ctx     context.Context
	summary func(context.Context) (*statsapi.Summary, error)
}

func (c *resourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeCPUUsageDesc, nodeMemoryUsageDesc, nodeSwapUsageDesc, containerStartTimeDesc,
		containerCPUUsageDesc, containerMemoryUsageDesc, containerSwapUsageDesc, podCPUUsageDesc, podMemoryUsageDesc,
		podSwapUsageDesc, resourceScrapeErrorDesc} {
		ch <- d
	}
}

func (c *resourceCollector) Collect(ch chan<- prometheus.Metric) {
	sum, err := c.summary(c.ctx)
	if err != nil {
		slog.Warn("kubelet server: resource metrics", "err", err)
		ch <- prometheus.MustNewConstMetric(resourceScrapeErrorDesc, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(resourceScrapeErrorDesc, prometheus.GaugeValue, 0)
	n := sum.Node
	cpuSeconds(ch, nodeCPUUsageDesc, n.CPU)
	workingSet(ch, nodeMemoryUsageDesc, n.Memory)
	swapUsage(ch, nodeSwapUsageDesc, n.Swap)
	for _, p := range sum.Pods {
		for _, ctr := range p.Containers {
			labels := []string{ctr.Name, p.PodRef.Name, p.PodRef.Namespace}
			if ctr.StartTime.Unix() > 0 {
				ch <- prometheus.MustNewConstMetric(containerStartTimeDesc, prometheus.GaugeValue,
					float64(ctr.StartTime.UnixNano())/float64(time.Second), labels...)
			}
			cpuSeconds(ch, containerCPUUsageDesc, ctr.CPU, labels...)
			workingSet(ch, containerMemoryUsageDesc, ctr.Memory, labels...)
			swapUsage(ch, containerSwapUsageDesc, ctr.Swap, labels...)
		}
		labels := []string{p.PodRef.Name, p.PodRef.Namespace}
		cpuSeconds(ch, podCPUUsageDesc, p.CPU, labels...)
		workingSet(ch, podMemoryUsageDesc, p.Memory, labels...)
		swapUsage(ch, podSwapUsageDesc, p.Swap, labels...)
	}
}

func cpuSeconds(ch chan<- prometheus.Metric, d *prometheus.Desc, s *statsapi.CPUStats, labels ...string) {
	if s == nil || s.UsageCoreNanoSeconds == nil {
		return
	}
	ch <- prometheus.NewMetricWithTimestamp(s.Time.Time, prometheus.MustNewConstMetric(d, prometheus.CounterValue,
		float64(*s.UsageCoreNanoSeconds)/float64(time.Second), labels...))
}

func workingSet(ch chan<- prometheus.Metric, d *prometheus.Desc, s *statsapi.MemoryStats, labels ...string) {
	if s == nil || s.WorkingSetBytes == nil {
		return
	}
	ch <- prometheus.NewMetricWithTimestamp(s.Time.Time, prometheus.MustNewConstMetric(d, prometheus.GaugeValue,
		float64(*s.WorkingSetBytes), labels...))
}

func swapUsage(ch chan<- prometheus.Metric, d *prometheus.Desc, s *statsapi.SwapStats, labels ...string) {
	if s == nil || s.SwapUsageBytes == nil {
		return
	}
	ch <- prometheus.NewMetricWithTimestamp(s.Time.Time, prometheus.MustNewConstMetric(d, prometheus.GaugeValue,
		float64(*s.SwapUsageBytes), labels...))
}
