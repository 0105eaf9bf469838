package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/runtime"
)

// runningPods lists the pods whose sandbox and every container run, by pod name.
func (a *testAgent) runningPods(t *testing.T) map[string]*runtime.Sandbox {
	t.Helper()
	sbs, err := a.rt.ListSandboxes(a.rt.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctrs, err := a.rt.ListContainers(a.rt.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*runtime.Sandbox{}
	for _, sb := range sbs {
		if !sb.Ready() {
			continue
		}
		running := 0
		for _, c := range ctrs {
			if c.SandboxID == sb.ID && c.State == runtime.ContainerRunning {
				running++
			}
		}
		if running > 0 {
			out[sb.Pod.Name] = sb
		}
	}
	return out
}

const webPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: busybox
    command: ["sleep", "3600"]
`

// Acceptance 6: two agents with different settings run side by side; neither sees or touches
// the other's pods, even pods of the same name.
func TestTwoAgentsSideBySide(t *testing.T) {
	one, two := startAgent(t, "node-one"), startAgent(t, "node-two")
	one.writeManifest(t, "web.yaml", webPod)
	two.writeManifest(t, "web.yaml", webPod)

	var twoSandbox string
	testenv.Eventually(t, 30*time.Second, func() error {
		p1, p2 := one.runningPods(t), two.runningPods(t)
		if len(p1) != 1 || p1["web-node-one"] == nil {
			return fmt.Errorf("agent one runs %v, want only web-node-one", mapKeys(p1))
		}
		if len(p2) != 1 || p2["web-node-two"] == nil {
			return fmt.Errorf("agent two runs %v, want only web-node-two", mapKeys(p2))
		}
		twoSandbox = p2["web-node-two"].ID
		return nil
	})

	if err := os.Remove(filepath.Join(one.cfg.ManifestDir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if p := one.runningPods(t); len(p) != 0 {
			return fmt.Errorf("agent one still runs %v", mapKeys(p))
		}
		sbs, err := one.rt.ListSandboxes(one.rt.Ctx)
		if err != nil || len(sbs) != 0 {
			return fmt.Errorf("agent one still has sandboxes %v (%v)", sbs, err)
		}
		// The pod's directory goes last.
		if uids, err := one.rt.PodDirUIDs(); err != nil || len(uids) != 0 {
			return fmt.Errorf("agent one still has pod directories %v (%v)", uids, err)
		}
		return nil
	})
	one.rt.AssertNothingLeft(t)
	p2 := two.runningPods(t)
	if len(p2) != 1 || p2["web-node-two"] == nil || p2["web-node-two"].ID != twoSandbox {
		t.Fatalf("agent two's pod was touched: now %v", mapKeys(p2))
	}
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
