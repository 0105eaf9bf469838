package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/internal/testenv"
)

// A pod with a hostPort leaves no portmap rule behind, however it goes: deleted gracefully,
// deleted by force, or removed from the manifest directory. portmap removes a sandbox's rules on
// DEL only when given its port mappings, which a sandbox removed by ID no longer has at hand.
func TestHostPortPodsLeaveNothing(t *testing.T) {
	ta := startAgent(t, "node")
	hostPortPod := func(name string, port int32) *corev1.Pod {
		c := busybox("main", "sleep", "3600")
		c.Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: port}}
		return newPod(name, c)
	}
	assertRule := func(port int32) {
		t.Helper()
		out, err := exec.Command("iptables-save", "-t", "nat").Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), fmt.Sprintf("--dport %d -j DNAT", port)) {
			t.Fatalf("no DNAT rule for hostPort %d", port)
		}
	}
	base := int32(31000 + time.Now().UnixNano()%1000)

	p := ta.create(t, hostPortPod("graceful", base))
	ta.waitPod(t, "default", "graceful", 60*time.Second, running)
	assertRule(base)
	if _, _, err := ta.registry().DeletePod(context.Background(), "default", "graceful", nil, nil); err != nil {
		t.Fatal(err)
	}
	ta.waitGone(t, "default", "graceful", string(p.UID), 30*time.Second)
	ta.rt.AssertNothingLeft(t)

	p = ta.create(t, hostPortPod("forced", base+1))
	ta.waitPod(t, "default", "forced", 60*time.Second, running)
	assertRule(base + 1)
	zero := int64(0)
	if _, _, err := ta.registry().DeletePod(context.Background(), "default", "forced", &zero, nil); err != nil {
		t.Fatal(err)
	}
	ta.waitGone(t, "default", "forced", string(p.UID), 30*time.Second)
	ta.rt.AssertNothingLeft(t)

	ta.writeManifest(t, "static.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: static}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    ports: [{containerPort: 80, hostPort: %d}]
`, base+2))
	sp := ta.waitPod(t, "default", "static-node", 60*time.Second, running)
	assertRule(base + 2)
	if err := os.Remove(filepath.Join(ta.cfg.ManifestDir, "static.yaml")); err != nil {
		t.Fatal(err)
	}
	ta.waitGone(t, "default", "static-node", string(sp.UID), 30*time.Second)
	ta.rt.AssertNothingLeft(t)
}

// An exec'd process ends with its request: kubectl interrupted leaves no process in the container
// and no FIFO open in the agent; nor does an exec still attached when its pod is deleted.
func TestExecLeavesNothing(t *testing.T) {
	ta := startAgent(t, "node")
	kc := serveAPI(t, ta)
	bin := kubectlBinary(t, kubectlVersions[len(kubectlVersions)-1])
	p := ta.create(t, newPod("shell", busybox("shell", "sleep", "3600")))
	ta.waitPod(t, "default", "shell", 60*time.Second, running)

	kubectl := func(args ...string) (*exec.Cmd, func()) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--kubeconfig", kc}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(kc))
		stdin, err := cmd.StdinPipe() // kept open: the command reads until the test closes it
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() }
	}
	marker := fmt.Sprintf("%d", 4000+time.Now().UnixNano()%1000)
	procs := func() []string {
		var found []string
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && strings.Contains(string(raw), marker+".5") && !strings.Contains(string(raw), "kubectl") {
				found = append(found, e.Name())
			}
		}
		return found
	}

	// Interrupted: kubectl killed while the command runs.
	cmd, stop := kubectl("exec", "shell", "--", "sleep", marker+".5")
	testenv.Eventually(t, 30*time.Second, func() error {
		if len(procs()) == 0 {
			return fmt.Errorf("exec'd process not started")
		}
		return nil
	})
	cmd.Process.Kill()
	stop()
	testenv.Eventually(t, 15*time.Second, func() error {
		if found := procs(); len(found) > 0 {
			return fmt.Errorf("exec'd process still runs after its request ended: pids %v", found)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, testenv.OpenExecFIFOs)

	// Attached when the pod is deleted, with stdin open.
	_, stop = kubectl("exec", "-i", "shell", "--", "sh", "-c", "cat; sleep "+marker+".5")
	defer stop()
	testenv.Eventually(t, 30*time.Second, func() error {
		if len(procs()) == 0 {
			return fmt.Errorf("exec'd process not started")
		}
		return nil
	})
	if _, _, err := ta.registry().DeletePod(context.Background(), "default", "shell", nil, nil); err != nil {
		t.Fatal(err)
	}
	ta.waitGone(t, "default", "shell", string(p.UID), 30*time.Second)
	testenv.Eventually(t, 10*time.Second, func() error { return ta.rt.Leftovers() })
}
