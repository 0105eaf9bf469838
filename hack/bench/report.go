package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

type memRow struct {
	peer, kind string
	procs      int
	rss, pss   int64
	pods       int
}

type report struct {
	command                string
	pods, parallel, single int

	mu         sync.Mutex
	peers      []string
	samples    map[string]map[string][]time.Duration
	totals     map[string]map[string]time.Duration
	mems       []memRow
	agent      string
	throughput map[string]float64
	failures   []string
}

func (r *report) init() {
	if r.samples == nil {
		r.samples, r.totals, r.throughput = map[string]map[string][]time.Duration{}, map[string]map[string]time.Duration{}, map[string]float64{}
	}
}

func (r *report) add(peer, what string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	if r.samples[peer] == nil {
		r.samples[peer] = map[string][]time.Duration{}
	}
	r.samples[peer][what] = append(r.samples[peer][what], d)
}

func (r *report) set(peer, what string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	if r.totals[peer] == nil {
		r.totals[peer] = map[string]time.Duration{}
	}
	r.totals[peer][what] = d
}

func (r *report) mem(peer, kind string, procs int, rss, pss int64, pods int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mems = append(r.mems, memRow{peer, kind, procs, rss, pss, pods})
}

func (r *report) fail(peer, what string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf("%s, %s: %v", peer, what, err))
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(int(q*float64(len(s)-1)+0.5), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/1e6) }

// ratio is a peer's value over the CRI peer's, the reference of the goals.
func (r *report) ratio(peer string, v func(string) float64) string {
	ref := ""
	for _, p := range r.peers {
		if strings.HasPrefix(p, "containerd CRI") {
			ref = p
		}
	}
	if ref == "" || v(ref) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v(peer)/v(ref))
}

func (r *report) perPod(peer string) (rss, pss int64) {
	for _, m := range r.mems {
		if m.peer == peer && m.pods > 0 {
			rss += m.rss / int64(m.pods)
			pss += m.pss / int64(m.pods)
		}
	}
	return rss, pss
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func (r *report) summary() string {
	var b strings.Builder
	r.table(&b)
	for _, f := range r.failures {
		fmt.Fprintln(&b, "FAILED:", f)
	}
	return b.String()
}

func (r *report) table(b *strings.Builder) {
	fmt.Fprintf(b, "| | %s |\n|---|%s\n", strings.Join(r.peers, " | "), strings.Repeat("---|", len(r.peers)))
	row := func(label string, cell func(p string) string) {
		cells := make([]string, len(r.peers))
		for i, p := range r.peers {
			cells[i] = cell(p)
		}
		fmt.Fprintf(b, "| %s | %s |\n", label, strings.Join(cells, " | "))
	}
	row("host memory per running pod, RSS (PSS): the runtime's processes beside the containers", func(p string) string {
		rss, pss := r.perPod(p)
		parts := []string{}
		for _, m := range r.mems {
			if m.peer == p && m.pods > 0 {
				parts = append(parts, fmt.Sprintf("%d %s %s", m.procs, m.kind, mib(m.rss/int64(m.pods))))
			}
		}
		return fmt.Sprintf("%s (%s): %s; %s", mib(rss), mib(pss), strings.Join(parts, ", "), r.ratio(p, func(q string) float64 { x, _ := r.perPod(q); return float64(x) }))
	})
	for _, k := range []struct{ label, total, sample string }{
		{fmt.Sprintf("%d pods, %d at a time, until every one answers HTTP (per pod median / p99)", r.pods, r.parallel), "dense all", "dense start"},
		{fmt.Sprintf("deleting those %d (per pod median / p99)", r.pods), "dense delete all", "dense delete"},
	} {
		row(k.label, func(p string) string {
			s := r.samples[p][k.sample]
			return fmt.Sprintf("%.1f s (%s / %s); %s", r.totals[p][k.total].Seconds(), ms(quantile(s, .5)), ms(quantile(s, .99)), r.ratio(p, func(q string) float64 { return float64(r.totals[q][k.total]) }))
		})
	}
	row(fmt.Sprintf("one pod, start / teardown (median of %d, interleaved; p99)", r.single), func(p string) string {
		st, td := r.samples[p]["single start"], r.samples[p]["single teardown"]
		return fmt.Sprintf("%s / %s (%s / %s); %s / %s", ms(quantile(st, .5)), ms(quantile(td, .5)), ms(quantile(st, .99)), ms(quantile(td, .99)),
			r.ratio(p, func(q string) float64 { return float64(quantile(r.samples[q]["single start"], .5)) }),
			r.ratio(p, func(q string) float64 { return float64(quantile(r.samples[q]["single teardown"], .5)) }))
	})
	row("one container writing as fast as it can (100-byte lines, to its log file)", func(p string) string {
		if r.throughput[p] == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f MB/s; %s", r.throughput[p], r.ratio(p, func(q string) float64 { return r.throughput[q] }))
	})
	if r.agent != "" {
		fmt.Fprintf(b, "\npodagent itself: %s.\n", r.agent)
	}
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\nWritten by `%s` on %s. Ratios are to containerd's CRI plugin, measured in the same run.\n\n", r.command, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	r.table(&b)
	fmt.Fprintf(&b, `
## Method

- One host, one run: `+"`hack/bench/bench.sh`"+` starts a containerd of its own for podagent (CRI plugin
  disabled) and one for containerd's CRI plugin (restrict_oom_score_adj, the pause image built by
  this repo, a bridge CNI network of its own), and gives podman its own storage, network and
  containers.conf (default_ulimits within this host's hard limits). Each peer has its own subnet.
  Everything is stopped and removed when the run ends.
- podagent runs pods as static pods (a manifest directory); its pod IP is read from containerd's
  labels. The CRI peer runs `+"`crictl run --no-pull`"+` per pod (RunPodSandbox, CreateContainer,
  StartContainer) and `+"`crictl stopp`/`rmp`"+`; podman runs `+"`podman kube play`"+` and `+"`podman pod rm -f`"+`.
- Start time: from the request until kubia answers HTTP 200 on the pod IP (polled every 5 ms).
  Teardown: until the runtime reports nothing of the pod. %d single-pod rounds interleave the
  peers; the density run starts %d pods %d at a time, measures, then deletes them %d at a time.
- Memory per pod: Rss and Pss (smaps_rollup) of the runtime's processes beside the containers
  (shims, log drivers, conmon) divided by the pods running; containerd, podman and the
  containers' own processes are not counted. Pss shares a binary's pages among its processes.
- Log throughput: a busybox container writes %d-byte-line output (`+"`yes | head -c N`"+`) as fast as it
  can, then a marker; the time from its first line to the marker in the log file.
`, r.single, r.pods, r.parallel, r.parallel, 100)
	if len(r.failures) > 0 {
		fmt.Fprintln(&b, "\nFailures in this run:")
		for _, f := range r.failures {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(f, "\n", " "))
		}
	}
	return b.String()
}
