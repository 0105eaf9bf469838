package agent_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podagent/podagent/agent"
	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/logs"
	"github.com/podagent/podagent/logs/driver"
	"github.com/podagent/podagent/runtime"
)

// Issue 6: `systemctl stop podagent` (KillMode=process: SIGTERM to the agent alone) leaves the
// pod, its log driver and its log running, and the agent started again adopts the container
// rather than restarting it.
func TestStopLeavesPodsAndLogDriversRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("long: skipped with -short")
	}
	bin := agentBinary(t)
	cfg := testConfig(t, "node")
	rt := testenv.NewRuntimeWith(t, agent.RuntimeConfig(cfg), agent.NetworkOptions(cfg))
	proc := runAgent(t, bin, cfg)
	writeFile(t, cfg.ManifestDir, "ticker.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: tick
    image: busybox
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); usleep 100000; done"]
`)

	var tick *runtime.Container
	testenv.Eventually(t, 60*time.Second, func() error {
		var err error
		tick, err = runningContainer(rt, "tick")
		return err
	})
	path := logs.Path(cfg.LogDir, tick.Pod.Namespace, tick.Pod.Name, tick.Pod.UID, "tick", tick.RestartCount)
	waitLogGrows(t, path)
	drv := logDriverOf(t, cfg.ContainerdNamespace, tick.ID)
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", drv.pid)); err != nil || exe != bin {
		t.Errorf("log driver %d runs %q (%v), want the agent's binary %s", drv.pid, exe, err, bin)
	}
	// Why it outlives the agent: the shim, not the agent, is its parent.
	if parent := cmdline(drv.ppid); len(parent) == 0 || !strings.HasPrefix(filepath.Base(parent[0]), "containerd-shim") {
		t.Errorf("log driver %d is the child of %d (%q), want a containerd shim", drv.pid, drv.ppid, parent)
	}

	proc.stop(syscall.SIGTERM)
	// A clean exit on SIGTERM is what systemd records as a clean stop.
	if st := proc.cmd.ProcessState; !st.Success() {
		t.Errorf("the agent ended with %v on SIGTERM, want exit status 0", st)
	}
	if !rt.ContainerRunning(rt.Ctx, tick.ID) {
		t.Fatalf("container %s stopped with the agent", tick.ID[:12])
	}
	sbs, err := rt.ListSandboxes(rt.Ctx)
	if err != nil || len(sbs) != 1 || !sbs[0].Ready() {
		t.Fatalf("the pod's sandbox does not run after the agent stopped: %v (%v)", sbs, err)
	}
	if !drv.alive() {
		t.Fatalf("log driver %d of container %s ended with the agent", drv.pid, tick.ID[:12])
	}
	waitLogGrows(t, path)

	// Started again, the agent keeps the container. It has been through its start-up sync once it
	// runs a pod added after it started.
	proc.start()
	writeFile(t, cfg.ManifestDir, "marker.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: marker
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleep
    image: busybox
    command: ["sleep", "3600"]
`)
	testenv.Eventually(t, 60*time.Second, func() error {
		_, err := runningContainer(rt, "sleep")
		return err
	})
	now, err := runningContainer(rt, "tick")
	if err != nil {
		t.Fatal(err)
	}
	if now.ID != tick.ID || now.RestartCount != 0 || !now.StartedAt.Equal(tick.StartedAt) {
		t.Fatalf("container replaced or restarted: was %s (restartCount %d, started %s), now %s (restartCount %d, started %s)",
			tick.ID[:12], tick.RestartCount, tick.StartedAt, now.ID[:12], now.RestartCount, now.StartedAt)
	}
	if drivers := logDrivers(cfg.ContainerdNamespace, tick.ID); len(drivers) != 1 || drivers[0].pid != drv.pid || !drv.alive() {
		t.Fatalf("log drivers of container %s: %+v, want the same one as before, %d", tick.ID[:12], drivers, drv.pid)
	}
	waitLogGrows(t, path)
}

// runningContainer is the one container named name, which must run.
func runningContainer(rt *testenv.Runtime, name string) (*runtime.Container, error) {
	ctrs, err := rt.ListContainers(rt.Ctx)
	if err != nil {
		return nil, err
	}
	var found []*runtime.Container
	for _, c := range ctrs {
		if c.Name == name {
			found = append(found, c)
		}
	}
	if len(found) != 1 || found[0].State != runtime.ContainerRunning {
		states := make([]string, len(found))
		for i, c := range found {
			states[i] = fmt.Sprintf("%s %s", c.ID[:12], c.State)
		}
		return nil, fmt.Errorf("containers named %s: %v, want one running", name, states)
	}
	return found[0], nil
}

// waitLogGrows waits until the log file at path is larger than it is now: the container is
// writing and the log driver is copying its output.
func waitLogGrows(t *testing.T, path string) {
	t.Helper()
	before := fileSize(path)
	testenv.Eventually(t, 15*time.Second, func() error {
		if now := fileSize(path); now <= before {
			return fmt.Errorf("%s: %d bytes, not more than %d", path, now, before)
		}
		return nil
	})
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// process is one process, told apart from a later one with the same PID by its start time.
type process struct {
	pid, ppid int
	start     string
}

// alive reports whether the process runs: it exists, is not a zombie, and is the same one.
func (p process) alive() bool {
	now, err := readProcess(p.pid)
	return err == nil && now.start == p.start
}

// readProcess reads the parent and start time of pid from /proc/PID/stat, failing for a process
// that has exited (a zombie or gone).
func readProcess(pid int) (process, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return process{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: the fields after it follow
	// the last ')'. They start at field 3 (state); ppid is field 4, starttime field 22.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return process{}, fmt.Errorf("/proc/%d/stat: %q", pid, raw)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 20 {
		return process{}, fmt.Errorf("/proc/%d/stat: %q", pid, raw)
	}
	if f[0] == "Z" || f[0] == "X" {
		return process{}, fmt.Errorf("process %d has exited (state %s)", pid, f[0])
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return process{}, fmt.Errorf("/proc/%d/stat: ppid %q", pid, f[1])
	}
	return process{pid: pid, ppid: ppid, start: f[19]}, nil
}

// logDrivers are the running log drivers of container id: the shim starts each with
// CONTAINER_ID and CONTAINER_NAMESPACE in its environment and the driver's marker argument.
func logDrivers(namespace, id string) []process {
	entries, _ := os.ReadDir("/proc")
	var out []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		vars := strings.Split(string(env), "\x00")
		if !slices.Contains(vars, "CONTAINER_ID="+id) || !slices.Contains(vars, "CONTAINER_NAMESPACE="+namespace) {
			continue
		}
		if !slices.Contains(cmdline(pid), driver.Marker) {
			continue
		}
		if p, err := readProcess(pid); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// logDriverOf is the one running log driver of container id.
func logDriverOf(t *testing.T, namespace, id string) process {
	t.Helper()
	drivers := logDrivers(namespace, id)
	if len(drivers) != 1 {
		t.Fatalf("%d log drivers run for container %s, want 1: %+v", len(drivers), id[:12], drivers)
	}
	return drivers[0]
}

// cmdline is the arguments of process pid, none if it is gone.
func cmdline(pid int) []string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(raw) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
}

// TestSystemdUnits checks what hack/systemd's units promise (pods outlive the agent, the agent
// comes back, it starts after containerd and the mirror), that the mirror serves the archive and
// address that hack/install.sh configures the agent with, and, where systemd-analyze is
// installed, that systemd reads the units without a warning.
func TestSystemdUnits(t *testing.T) {
	agentUnit := readUnit(t, "../hack/systemd/podagent.service")
	mirrorUnit := readUnit(t, "../hack/systemd/podagent-mirror.service")
	for _, c := range []struct {
		unit             unitFile
		section, key     string
		want             string
		contains, prefix bool
	}{
		{agentUnit, "Service", "KillMode", "process", false, false},
		{agentUnit, "Service", "Restart", "always", false, false},
		{agentUnit, "Service", "ExecStart", "/usr/local/bin/podagent serve --config /etc/podagent/config.yaml", false, false},
		{agentUnit, "Service", "OOMScoreAdjust", "-999", false, false},
		{agentUnit, "Unit", "After", "containerd.service", true, false},
		{agentUnit, "Unit", "Wants", "containerd.service", true, false},
		{agentUnit, "Unit", "After", "podagent-mirror.service", true, false},
		{agentUnit, "Unit", "Wants", "podagent-mirror.service", true, false},
		{agentUnit, "Install", "WantedBy", "multi-user.target", true, false},
		{mirrorUnit, "Service", "Restart", "always", false, false},
		{mirrorUnit, "Service", "ExecStart", "/usr/local/bin/podagent mirror ", false, true},
	} {
		got := c.unit.get(c.section, c.key)
		var ok bool
		switch {
		case c.contains:
			ok = slices.Contains(strings.Fields(got), c.want)
		case c.prefix:
			ok = strings.HasPrefix(got, c.want)
		default:
			ok = got == c.want
		}
		if !ok {
			t.Errorf("%s: [%s] %s=%q, want %q", c.unit.path, c.section, c.key, got, c.want)
		}
	}

	// The mirror's address and archive are those the installed config names.
	args := strings.Fields(mirrorUnit.get("Service", "ExecStart"))
	install, err := os.ReadFile("../hack/install.sh")
	if err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{"--listen": "mirror=http://%s\n", "--image-archive": "archive=%s\n"} {
		i := slices.Index(args, flag)
		if i < 0 || i+1 >= len(args) {
			t.Errorf("%s: ExecStart has no %s", mirrorUnit.path, flag)
			continue
		}
		if line := fmt.Sprintf(want, args[i+1]); !bytes.Contains(install, []byte(line)) {
			t.Errorf("hack/install.sh has no line %q, to match %s %s in %s", strings.TrimSpace(line), flag, args[i+1], mirrorUnit.path)
		}
	}

	t.Run("systemd-analyze", func(t *testing.T) { verifyUnits(t, agentUnit, mirrorUnit) })
}

// verifyUnits runs `systemd-analyze verify` on the units, and fails on any complaint about them:
// systemd only warns about an unknown or misspelt directive and goes on without it.
func verifyUnits(t *testing.T, units ...unitFile) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Missing(t, "systemd-analyze is not installed")
	}
	// verify also checks that ExecStart's program exists: this test binary stands in for
	// /usr/local/bin/podagent, which need not be installed here.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for _, u := range units {
		p := filepath.Join(dir, filepath.Base(u.path))
		if err := os.WriteFile(p, bytes.ReplaceAll(u.raw, []byte("/usr/local/bin/podagent"), []byte(self)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
	var complaints []string
	for _, line := range strings.Split(string(out), "\n") {
		// Complaints about other units (containerd's, say) are not ours to fail on.
		for _, u := range units {
			if strings.Contains(line, filepath.Base(u.path)) {
				complaints = append(complaints, line)
				break
			}
		}
	}
	if err != nil || len(complaints) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// unitFile is a systemd unit file: the values of each directive by section, in order.
type unitFile struct {
	path     string
	raw      []byte
	sections map[string]map[string][]string
}

// get is the directive's value, its assignments joined by spaces (After= and Wants= accumulate);
// an empty assignment resets what came before, as systemd does.
func (u unitFile) get(section, key string) string {
	return strings.Join(u.sections[section][key], " ")
}

func readUnit(t *testing.T, path string) unitFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	u.path, u.raw = path, raw
	return u
}

// parseUnit parses a unit file as systemd.syntax(7) describes: [Section] headers, Key=Value lines,
// comments starting with # or ;, and lines continued by a trailing backslash.
func parseUnit(raw []byte) (unitFile, error) {
	u := unitFile{sections: map[string]map[string][]string{}}
	var section, cont string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cont == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cont += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, cont = cont+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u.sections[section] == nil {
				u.sections[section] = map[string][]string{}
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return u, fmt.Errorf("line %d: %q is neither a section nor Key=Value", n, line)
		}
		if section == "" {
			return u, fmt.Errorf("line %d: %q comes before any section", n, line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if value == "" {
			delete(u.sections[section], key)
			continue
		}
		u.sections[section][key] = append(u.sections[section][key], value)
	}
	if err := sc.Err(); err != nil {
		return u, err
	}
	if cont != "" {
		return u, errors.New("the file ends in a continued line")
	}
	return u, nil
}
