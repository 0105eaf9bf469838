// Command bench measures what a kubia pod costs and how fast pods come and go under podagent,
// containerd's CRI plugin (driven with crictl) and podman kube play, side by side in one run, and
// writes the tables as Markdown. hack/bench/bench.sh brings the peers up and down around it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

func main() {
	var (
		pods     = flag.Int("pods", 100, "pods started at once (the density run)")
		parallel = flag.Int("parallel", 8, "pods started at a time")
		single   = flag.Int("single", 12, "single-pod start/teardown rounds, interleaved across peers")
		logBytes = flag.Int64("log-bytes", 200<<20, "bytes the log-throughput container writes")
		idle     = flag.Duration("idle", 10*time.Second, "how long the agent's idle CPU is measured")
		out      = flag.String("out", "BENCHMARKS.md", "Markdown report")
		command  = flag.String("command", "make bench", "the command that ran this, for the report")

		paManifests = flag.String("podagent-manifests", "", "podagent's manifest directory")
		paLogs      = flag.String("podagent-logs", "", "podagent's log directory")
		paAddress   = flag.String("podagent-containerd", "", "podagent's containerd socket")
		paNS        = flag.String("podagent-namespace", "podagent-bench", "podagent's containerd namespace")
		paNode      = flag.String("podagent-node", "", "podagent's node name")
		paPID       = flag.Int("podagent-pid", 0, "podagent's process")
		crictl      = flag.String("crictl", "", "crictl binary (empty: no CRI peer)")
		criAddress  = flag.String("cri-containerd", "", "the CRI peer's containerd socket")
		criDir      = flag.String("cri-dir", "", "the CRI peer's work directory")
		podmanNet   = flag.String("podman-network", "", "podman network (empty: no podman peer)")
		podmanDir   = flag.String("podman-dir", "", "the podman peer's work directory")
	)
	flag.Parse()
	ctx := context.Background()

	var peers []peer
	client, err := containerd.New(*paAddress, containerd.WithDefaultNamespace(*paNS))
	if err != nil {
		log.Fatal(err)
	}
	peers = append(peers, &podagentPeer{manifests: *paManifests, logDir: *paLogs, node: *paNode, pid: *paPID, address: *paAddress, client: client})
	if *crictl != "" {
		peers = append(peers, &criPeer{crictl: *crictl, endpoint: "unix://" + *criAddress, address: *criAddress, dir: *criDir, ids: map[string]string{}})
	}
	if *podmanNet != "" {
		peers = append(peers, &podmanPeer{network: *podmanNet, dir: *podmanDir})
	}

	r := &report{command: *command, pods: *pods, parallel: *parallel, single: *single}
	for _, p := range peers {
		r.peers = append(r.peers, p.Name())
	}
	// Single pods first, on an otherwise idle host; interleaved so that drift hits every peer.
	for i := 0; i < *single; i++ {
		for _, p := range peers {
			name := fmt.Sprintf("single-%d", i)
			start, stop, err := startStop(ctx, p, name)
			if err != nil {
				r.fail(p.Name(), "single pod", err)
				continue
			}
			r.add(p.Name(), "single start", start)
			r.add(p.Name(), "single teardown", stop)
		}
	}
	for _, p := range peers {
		density(ctx, r, p, *pods, *parallel, *idle)
	}
	for _, p := range peers {
		throughput(ctx, r, p, *logBytes)
	}
	if err := os.WriteFile(*out, []byte(r.markdown()), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Print(r.summary())
}

// startStop runs one kubia pod until it answers HTTP, then removes it.
func startStop(ctx context.Context, p peer, name string) (time.Duration, time.Duration, error) {
	t0 := time.Now()
	ip, err := p.Run(ctx, name, nil)
	if err == nil {
		err = answers(ctx, ip)
	}
	start := time.Since(t0)
	t1 := time.Now()
	if rerr := p.Remove(ctx, name); rerr != nil {
		return 0, 0, errors.Join(err, rerr)
	}
	return start, time.Since(t1), err
}

// answers polls kubia at ip:8080 until it answers 200, for at most a minute.
func answers(ctx context.Context, ip string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get("http://" + ip + ":8080/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := pause(ctx, 5*time.Millisecond); err != nil {
			return fmt.Errorf("kubia at %s does not answer: %w", ip, err)
		}
	}
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// density starts n pods, parallel at a time, until every one answers; measures what the host
// spends per pod and the agent's own cost with them running; then deletes them, parallel at a time.
func density(ctx context.Context, r *report, p peer, n, parallel int, idle time.Duration) {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("dense-%d", i)
	}
	t0 := time.Now()
	errs := each(names, parallel, func(name string) error {
		t := time.Now()
		ip, err := p.Run(ctx, name, nil)
		if err == nil {
			err = answers(ctx, ip)
		}
		r.add(p.Name(), "dense start", time.Since(t))
		return err
	})
	r.set(p.Name(), "dense all", time.Since(t0))
	if errs != nil {
		r.fail(p.Name(), "density run", errs)
	}
	// What the runtime added per pod, by kind of process.
	for kind, pids := range p.Helpers() {
		rss, pss := memory(pids)
		r.mem(p.Name(), kind, len(pids), rss, pss, n)
	}
	if pid := p.Daemon(); pid != 0 {
		rss, _ := memory([]int{pid})
		cpu0 := cpuTime(pid)
		_ = pause(ctx, idle)
		r.agent = fmt.Sprintf("%.1f MiB RSS with %d pods; idle CPU %.2f %% of a core over %s", float64(rss)/(1<<20), n, 100*(cpuTime(pid)-cpu0).Seconds()/idle.Seconds(), idle)
	}
	t1 := time.Now()
	if err := each(names, parallel, func(name string) error {
		t := time.Now()
		err := p.Remove(ctx, name)
		r.add(p.Name(), "dense delete", time.Since(t))
		return err
	}); err != nil {
		r.fail(p.Name(), "deletion", err)
	}
	r.set(p.Name(), "dense delete all", time.Since(t1))
}

func each(names []string, parallel int, fn func(string) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, parallel)
	)
	for _, name := range names {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(name); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// throughput runs a container that writes bytes lines of 100 characters as fast as it can and
// then a marker, and times it from its start until the marker is in its log.
func throughput(ctx context.Context, r *report, p peer, bytes int64) {
	name := "logspeed"
	line := strings.Repeat("x", 99)
	script := fmt.Sprintf("sleep 1; echo START; yes %s | head -c %d; echo DONE; exec sleep 3600", line, bytes)
	if _, err := p.Run(ctx, name, []string{"sh", "-c", script}); err != nil {
		r.fail(p.Name(), "log throughput", err)
		return
	}
	defer func() {
		if err := p.Remove(ctx, name); err != nil {
			r.fail(p.Name(), "log throughput", err)
		}
	}()
	path, err := p.LogPath(ctx, name)
	if err != nil {
		r.fail(p.Name(), "log throughput", err)
		return
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var t0 time.Time
	for {
		tail := lastBytes(path, 4096)
		if t0.IsZero() && strings.Contains(tail, "START") {
			t0 = time.Now()
		}
		if strings.Contains(tail, "DONE") {
			break
		}
		if err := pause(tctx, 2*time.Millisecond); err != nil {
			r.fail(p.Name(), "log throughput", fmt.Errorf("no DONE in %s: %w", path, err))
			return
		}
	}
	if t0.IsZero() {
		r.fail(p.Name(), "log throughput", errors.New("START was rotated away before it was seen"))
		return
	}
	r.throughput[p.Name()] = float64(bytes) / time.Since(t0).Seconds() / 1e6
}

func lastBytes(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	m, _ := f.ReadAt(buf, off)
	return string(buf[:m])
}

// --- processes

func procsWhere(match func(args []string) bool) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if args := cmdline(pid); len(args) > 0 && match(args) {
			out = append(out, pid)
		}
	}
	return out
}

func cmdline(pid int) []string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(raw) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
}

// shimsOf are the shims of the containerd at address.
func shimsOf(address string) []int {
	return procsWhere(func(args []string) bool {
		return strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") && slicesContains(args, address)
	})
}

func slicesContains(s []string, v string) bool { return slices.Contains(s, v) }

// memory sums the resident and proportional set sizes of pids, in bytes.
func memory(pids []int) (rss, pss int64) {
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "Rss:":
				rss += kb << 10
			case "Pss:":
				pss += kb << 10
			}
		}
	}
	return rss, pss
}

// cpuTime is the user and system time pid has used.
func cpuTime(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
