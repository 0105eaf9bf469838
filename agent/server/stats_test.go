package server

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

func u64(v uint64) *uint64 { return &v }

// sampleSummary is a node with one pod of one container, sampled at t with cpu nanoseconds used.
func sampleSummary(t time.Time, cpu uint64) *statsapi.Summary {
	ts := metav1.NewTime(t)
	start := metav1.NewTime(time.Unix(1700000000, 0))
	return &statsapi.Summary{
		Node: statsapi.NodeStats{
			CPU:    &statsapi.CPUStats{Time: ts, UsageCoreNanoSeconds: u64(cpu * 4)},
			Memory: &statsapi.MemoryStats{Time: ts, WorkingSetBytes: u64(1 << 30), UsageBytes: u64(2 << 30), RSSBytes: u64(1 << 29)},
		},
		Pods: []statsapi.PodStats{{
			PodRef:    statsapi.PodReference{Name: "web", Namespace: "ns", UID: "uid-1"},
			StartTime: start,
			CPU:       &statsapi.CPUStats{Time: ts, UsageCoreNanoSeconds: u64(cpu)},
			Memory:    &statsapi.MemoryStats{Time: ts, WorkingSetBytes: u64(50 << 20)},
			Containers: []statsapi.ContainerStats{{
				Name: "app", StartTime: start,
				CPU:    &statsapi.CPUStats{Time: ts, UsageCoreNanoSeconds: u64(cpu)},
				Memory: &statsapi.MemoryStats{Time: ts, WorkingSetBytes: u64(40 << 20)},
			}},
		}},
	}
}

func TestUsageNanoCores(t *testing.T) {
	c := newUsageCache()
	t0 := time.Unix(1800000000, 0)
	first := sampleSummary(t0, 1e9)
	c.fill(first)
	if first.Node.CPU.UsageNanoCores != nil {
		t.Error("a rate from one sample")
	}
	// 0.5 s of CPU in 10 s: 50 millicores, 50,000,000 nanocores; the node used 4 times that.
	second := sampleSummary(t0.Add(10*time.Second), 1.5e9)
	c.fill(second)
	for name, got := range map[string]*uint64{
		"node": second.Node.CPU.UsageNanoCores, "pod": second.Pods[0].CPU.UsageNanoCores,
		"container": second.Pods[0].Containers[0].CPU.UsageNanoCores,
	} {
		want := uint64(50_000_000)
		if name == "node" {
			want *= 4
		}
		if got == nil || *got != want {
			t.Errorf("%s nanocores = %v, want %d", name, got, want)
		}
	}
	// A counter that went back (a restarted instance) gives no rate.
	third := sampleSummary(t0.Add(20*time.Second), 1e6)
	c.fill(third)
	if third.Pods[0].CPU.UsageNanoCores != nil {
		t.Error("a rate across a counter reset")
	}
}

func TestStatsSummary(t *testing.T) {
	e := newTestEnv(t, nil)
	e.host.stats = sampleSummary(time.Now(), 1e9)
	e.host.stats.Node.Network = &statsapi.NetworkStats{}
	for _, tt := range []struct {
		query       string
		wantNetwork bool
	}{{"", true}, {"?only_cpu_and_memory=true", false}} {
		code, body, _ := e.do(t, "GET", "/stats/summary"+tt.query, "admin-token")
		var sum statsapi.Summary
		if err := json.Unmarshal([]byte(body), &sum); code != 200 || err != nil {
			t.Fatalf("%q: %d %v %q", tt.query, code, err, body)
		}
		if sum.Node.NodeName != testNode || len(sum.Pods) != 1 || *sum.Pods[0].Containers[0].Memory.WorkingSetBytes != 40<<20 {
			t.Errorf("%q: summary %+v", tt.query, sum)
		}
		if (sum.Node.Network != nil) != tt.wantNetwork {
			t.Errorf("%q: network %v", tt.query, sum.Node.Network)
		}
	}
	e.host.statsErr = errors.New("cgroup gone")
	if code, body, _ := e.do(t, "GET", "/stats/summary", "admin-token"); code != 500 || !strings.HasPrefix(body, "Internal Error: ") {
		t.Errorf("failing stats = %d %q", code, body)
	}
}

func TestResourceMetrics(t *testing.T) {
	e := newTestEnv(t, nil)
	e.host.stats = sampleSummary(time.Unix(1800000000, 0), 2e9)
	code, body, _ := e.do(t, "GET", "/metrics/resource", "admin-token")
	if code != 200 {
		t.Fatalf("= %d %q", code, body)
	}
	for _, want := range []string{
		"# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds",
		"# TYPE node_cpu_usage_seconds_total counter",
		"node_cpu_usage_seconds_total 8 1800000000000",
		"node_memory_working_set_bytes 1.073741824e+09 1800000000000",
		`container_cpu_usage_seconds_total{container="app",namespace="ns",pod="web"} 2 1800000000000`,
		`container_memory_working_set_bytes{container="app",namespace="ns",pod="web"} 4.194304e+07 1800000000000`,
		`container_start_time_seconds{container="app",namespace="ns",pod="web"} 1.7e+09`,
		`pod_cpu_usage_seconds_total{namespace="ns",pod="web"} 2 1800000000000`,
		`pod_memory_working_set_bytes{namespace="ns",pod="web"} 5.24288e+07 1800000000000`,
		"resource_scrape_error 0",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("missing %q in\n%s", want, body)
		}
	}
	e.host.statsErr = errors.New("cgroup gone")
	if _, body, _ := e.do(t, "GET", "/metrics/resource", "admin-token"); !strings.Contains(body, "resource_scrape_error 1\n") {
		t.Errorf("failing scrape:\n%s", body)
	}
}
