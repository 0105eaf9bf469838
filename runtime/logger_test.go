package runtime_test

import (
	"bytes"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/logs"
	"github.com/podagent/podagent/runtime"
)

// buildLogger builds cmd/podagent-logger into dir.
func buildLogger(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, runtime.LoggerName)
	cmd := osexec.Command(filepath.Join(goruntime.GOROOT(), "bin", "go"), "build", "-trimpath", "-o", out, "github.com/podagent/podagent/cmd/podagent-logger")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", runtime.LoggerName, err, b)
	}
	return out
}

// processesOf lists the processes whose executable is path, with their resident memory in bytes.
func processesOf(path string) map[int]int64 {
	out := map[int]int64{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || string(bytes.SplitN(raw, []byte{0}, 2)[0]) != path {
			continue
		}
		status, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "status"))
		for _, line := range strings.Split(string(status), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				out[pid] = kb << 10
			}
		}
	}
	return out
}

// The runtime runs podagent-logger, found beside the configured driver, as each container's log
// driver: it writes the CRI log, one process per container (its resident size is logged; make bench measures it), and goes
// with the container.
func TestLeanLoggerWritesContainerLog(t *testing.T) {
	testenv.RequireContainerd(t)
	dir := t.TempDir()
	logger := buildLogger(t, dir)
	cfg := testenv.RuntimeConfig(dir)
	// The agent's binary as configured: absent here, so only the logger beside it can serve.
	cfg.LogDriver = filepath.Join(dir, "podagent")
	rt := testenv.NewRuntimeWith(t, cfg, testenv.NetworkOptions(dir))
	pod := newPod("lean-logger", busybox("talk", "sh", "-c", "echo hello; echo oops >&2; i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; exec sleep 3600"))
	if _, err := rt.RunPod(rt.Ctx, pod); err != nil {
		t.Fatal(err)
	}
	path := logs.Path(cfg.LogDir, pod.Namespace, pod.Name, string(pod.UID), "talk", 0)
	testenv.Eventually(t, 10*time.Second, func() error {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, want := range []string{" stdout F hello\n", " stderr F oops\n", " stdout F line 1999\n"} {
			if !bytes.Contains(raw, []byte(want)) {
				return fmt.Errorf("log lacks %q so far", want)
			}
		}
		return nil
	})
	procs := processesOf(logger)
	if len(procs) != 1 {
		t.Fatalf("%d %s processes (%v), want one for the one container", len(procs), runtime.LoggerName, procs)
	}
	// Its memory is a benchmark's to measure (make bench), not a test's to assert.
	for pid, rss := range procs {
		t.Logf("%s pid %d: %.2f MiB resident", runtime.LoggerName, pid, float64(rss)/(1<<20))
	}
	if err := rt.RemovePod(rt.Ctx, runtime.PodRef{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}, time.Second); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if p := processesOf(logger); len(p) > 0 {
			return fmt.Errorf("%s still runs: %v", runtime.LoggerName, p)
		}
		return nil
	})
}
