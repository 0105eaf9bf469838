package agent_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podagent/podagent/agent"
	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/runtime"
)

// agentBinary builds cmd/podagent for tests that run the agent as a process of its own.
func agentBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "the go tool is not on PATH")
	}
	bin := filepath.Join(t.TempDir(), "podagent")
	out, err := exec.Command(goTool, "build", "-o", bin, "github.com/podagent/podagent/cmd/podagent").CombinedOutput()
	if err != nil {
		t.Fatalf("build podagent: %v\n%s", err, out)
	}
	return bin
}

// agentProcess runs the agent binary with cfg's settings as flags.
type agentProcess struct {
	cmd *exec.Cmd
	log *os.File
}

func startAgentProcess(t *testing.T, bin string, cfg agent.Config) *agentProcess {
	t.Helper()
	args := []string{"serve",
		"--root-dir", cfg.RootDir, "--run-dir", cfg.RunDir, "--log-dir", cfg.LogDir,
		"--containerd-address", cfg.ContainerdAddress, "--containerd-namespace", cfg.ContainerdNamespace,
		"--pod-cidr", cfg.PodCIDR, "--bridge-name", cfg.BridgeName, "--node-name", cfg.NodeName,
		"--manifest-dir", cfg.ManifestDir, "--pause-image", cfg.PauseImage, "--resolv-conf", cfg.ResolvConf,
		"--listen", cfg.Listen,
	}
	for _, a := range cfg.ImageArchives {
		args = append(args, "--image-archive", a)
	}
	for host, mirrors := range cfg.RegistryMirrors {
		for _, m := range mirrors {
			args = append(args, "--registry-mirror", host+"="+m)
		}
	}
	log, err := os.OpenFile(filepath.Join(cfg.RootDir, "..", "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	return &agentProcess{cmd: cmd, log: log}
}

// agentRun is the agent binary run by a test: stopped when the test ends, with the end of its log
// shown if the test failed.
type agentRun struct {
	t   *testing.T
	bin string
	cfg agent.Config
	*agentProcess
}

func runAgent(t *testing.T, bin string, cfg agent.Config) *agentRun {
	t.Helper()
	r := &agentRun{t: t, bin: bin, cfg: cfg}
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(cfg.RootDir, "..", "agent.log")); err == nil {
				t.Logf("agent log (tail):\n%s", tail(string(log), 80))
			}
		}
	})
	r.start()
	t.Cleanup(func() { r.stop(syscall.SIGTERM) })
	return r
}

func (r *agentRun) start() { r.agentProcess = startAgentProcess(r.t, r.bin, r.cfg) }

// restart stops the agent with sig and starts it again.
func (r *agentRun) restart(sig syscall.Signal) {
	r.stop(sig)
	r.start()
}

// stop ends the agent with sig and waits for it.
func (p *agentProcess) stop(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	_ = p.cmd.Wait()
	p.log.Close()
}

// Acceptance 1: the agent is killed (SIGKILL) or stopped (SIGTERM) at random moments while 20
// static pods come and go. Afterwards every desired pod runs, no pod that was running was
// restarted, and nothing is left of the pods that are gone.
func TestAgentKilledWhilePodsChange(t *testing.T) {
	if testing.Short() {
		t.Skip("long: skipped with -short")
	}
	bin := agentBinary(t)
	cfg := testConfig(t, "node")
	rt := testenv.NewRuntimeWith(t, agent.RuntimeConfig(cfg), agent.NetworkOptions(cfg))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	seed := rng.Uint64()
	t.Logf("seed %d", seed)
	rng = rand.New(rand.NewPCG(seed, 2))

	const pods = 20
	desired := map[string]bool{}
	write := func(name string) {
		body := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
`, name)
		tmp := filepath.Join(cfg.ManifestDir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(cfg.ManifestDir, name+".yaml")); err != nil {
			t.Fatal(err)
		}
		desired[name] = true
	}
	// removedIn is the last round in which each pod was removed.
	removedIn := map[string]int{}
	round := 0
	remove := func(name string) {
		if err := os.Remove(filepath.Join(cfg.ManifestDir, name+".yaml")); err != nil {
			t.Fatal(err)
		}
		delete(desired, name)
		removedIn[name+"-"+cfg.NodeName] = round
	}

	proc := runAgent(t, bin, cfg)
	// seen records each container seen running, with the round: at the end, a pod still desired
	// and not removed since must run that same container.
	type sighting struct {
		c     *runtime.Container
		round int
	}
	seen := map[string]sighting{}
	record := func() {
		ctrs, err := rt.ListContainers(rt.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range ctrs {
			if _, ok := seen[c.ID]; !ok && c.State == runtime.ContainerRunning {
				seen[c.ID] = sighting{c, round}
			}
		}
	}
	for ; round < 10; round++ {
		for range 5 {
			name := fmt.Sprintf("p%02d", rng.IntN(pods))
			if desired[name] {
				remove(name)
			} else {
				write(name)
			}
		}
		// Not a wait for anything: the random moment, while the agent works, at which it is killed.
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
		record()
		sig := syscall.SIGKILL
		if round%3 == 2 {
			sig = syscall.SIGTERM
		}
		proc.restart(sig)
	}

	// Let it settle: exactly the desired pods run, one sandbox and one running container each.
	testenv.Eventually(t, 90*time.Second, func() error { return settled(rt, cfg, desired) })
	record()
	ctrs, err := rt.ListContainers(rt.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs {
		if c.RestartCount != 0 {
			t.Errorf("pod %s: container restarted (restartCount %d)", c.Pod.Name, c.RestartCount)
		}
	}
	// A pod removed and re-added is a new pod; any other must run the container seen before.
	now := map[string]*runtime.Container{}
	for _, c := range ctrs {
		now[c.Pod.Name] = c
	}
	checked := 0
	for _, s := range seen {
		cur, ok := now[s.c.Pod.Name]
		if last, removed := removedIn[s.c.Pod.Name]; !ok || (removed && last >= s.round) {
			continue
		}
		checked++
		if cur.ID != s.c.ID || !cur.StartedAt.Equal(s.c.StartedAt) {
			if cur.ID == s.c.ID {
				t.Errorf("pod %s: container %s start time changed from %s to %s", s.c.Pod.Name, cur.ID[:12], s.c.StartedAt, cur.StartedAt)
				continue
			}
			t.Errorf("pod %s: container %s (seen in round %d) replaced by %s", s.c.Pod.Name, s.c.ID[:12], s.round, cur.ID[:12])
		}
	}
	t.Logf("%d desired pods; %d containers seen running earlier checked for needless restarts", len(desired), checked)
}

// settled checks that the runtime runs exactly the desired static pods, each with one ready
// sandbox and one running container, and nothing else: no other container, network namespace or
// IP reservation.
func settled(rt *testenv.Runtime, cfg agent.Config, desired map[string]bool) error {
	sbs, err := rt.ListSandboxes(rt.Ctx)
	if err != nil {
		return err
	}
	ctrs, err := rt.ListContainers(rt.Ctx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for name := range desired {
		want[name+"-"+cfg.NodeName] = true
	}
	got := map[string]int{}
	sbIDs := map[string]bool{}
	for _, sb := range sbs {
		if !want[sb.Pod.Name] {
			return fmt.Errorf("sandbox of pod %s, which is not desired, remains", sb.Pod.Name)
		}
		if !sb.Ready() {
			return fmt.Errorf("sandbox of pod %s is not running", sb.Pod.Name)
		}
		got[sb.Pod.Name]++
		sbIDs[sb.ID] = true
	}
	for name := range want {
		if got[name] != 1 {
			return fmt.Errorf("pod %s has %d sandboxes, want 1", name, got[name])
		}
	}
	if len(ctrs) != len(want) {
		var list []string
		for _, c := range ctrs {
			list = append(list, fmt.Sprintf("%s %s %s restarts=%d sandbox=%.12s exit=%d reason=%q started=%s created=%s",
				c.Pod.Name, c.ID[:12], c.State, c.RestartCount, c.SandboxID, c.ExitCode, c.Reason, c.StartedAt.Format(time.RFC3339Nano), c.CreatedAt.Format(time.RFC3339Nano)))
		}
		return fmt.Errorf("%d containers for %d desired pods:\n%s", len(ctrs), len(want), strings.Join(list, "\n"))
	}
	for _, c := range ctrs {
		if c.State != runtime.ContainerRunning || !sbIDs[c.SandboxID] {
			return fmt.Errorf("container of pod %s: %s in sandbox %s", c.Pod.Name, c.State, c.SandboxID[:12])
		}
	}
	nets, err := rt.Runtime.Network().Sandboxes()
	if err != nil {
		return err
	}
	for _, id := range nets {
		if !sbIDs[id] {
			return fmt.Errorf("network namespace of sandbox %s left", id[:12])
		}
	}
	res, err := rt.Runtime.Network().Reservations()
	if err != nil {
		return err
	}
	for ip, owner := range res {
		if !sbIDs[owner] {
			return fmt.Errorf("IP %s reserved for sandbox %s, which is gone", ip, owner[:min(12, len(owner))])
		}
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
