package agent_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/podagent/podagent/agent"
	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/runtime"
)

// Issue 6, acceptance 1: what `make run` starts (hack/run.sh: the image mirror and the agent, with
// the API) serves the seed walkthrough to the installed kubectl with no other step, from a clean
// state; Ctrl-C then stops the agent and the mirror and leaves the pods running.
func TestMakeRunServesTheWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("long: skipped with -short")
	}
	bin := kubectlBinary(t, kubectlVersions[len(kubectlVersions)-1])
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("make", "-C", repo, "build").CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	cfg := testConfig(t, "node")
	// The harness runtime removes what the agent ran and checks that nothing leaked.
	rt := testenv.NewRuntimeWith(t, agent.RuntimeConfig(cfg), agent.NetworkOptions(cfg))
	run := exec.Command(filepath.Join(repo, "hack", "run.sh"),
		"--root-dir", cfg.RootDir, "--run-dir", cfg.RunDir, "--log-dir", cfg.LogDir,
		"--containerd-namespace", cfg.ContainerdNamespace, "--pod-cidr", cfg.PodCIDR,
		"--bridge-name", cfg.BridgeName, "--node-name", cfg.NodeName, "--listen", freeAddr(t))
	run.Env = append(os.Environ(), "PODAGENT_MANIFEST_DIR="+cfg.ManifestDir, "PODAGENT_MIRROR_ADDR="+freeAddr(t))
	// Its own process group, as a terminal gives it: Ctrl-C goes to the whole group.
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := run.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	run.Stdout = run.Stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-run.Process.Pid, syscall.SIGINT)
			_ = run.Wait()
		}
	})
	// The one line that points kubectl at it.
	kcLine := regexp.MustCompile(`^\s*export KUBECONFIG=(\S+)$`)
	kc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := kcLine.FindStringSubmatch(sc.Text()); m != nil {
				kc <- m[1]
			}
		}
	}()
	var kubeconfig string
	select {
	case kubeconfig = <-kc:
	case <-time.After(2 * time.Minute):
		t.Fatal("make run printed no `export KUBECONFIG=` line")
	}
	examples := filepath.Join(repo, "examples")
	steps := seedWalkthrough(examples)
	for i, s := range steps {
		runStep(t, bin, kubeconfig, i, s)
	}
	// The walkthrough ends with every pod deleted; one more to outlive the agent.
	for i, s := range steps[:2] {
		runStep(t, bin, kubeconfig, len(steps)+i, s)
	}

	// Ctrl-C: the agent and the mirror stop, the pod keeps running.
	if err := syscall.Kill(-run.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run.Wait() }()
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("make run after Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("make run did not stop within 30s of Ctrl-C")
	}
	ctrs, err := rt.ListContainers(rt.Ctx)
	if err != nil || len(ctrs) != 1 || ctrs[0].State != runtime.ContainerRunning || ctrs[0].Pod.Name != "kubia-manual" {
		t.Fatalf("after Ctrl-C the containers are %+v (%v), want kubia-manual's running", ctrs, err)
	}
}

// freeAddr is a 127.0.0.1 address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
