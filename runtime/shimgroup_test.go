package runtime_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/runtime"
)

// shimPIDs lists the shim processes of containerd namespace ns.
func shimPIDs(t *testing.T, ns string) []int {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
		if strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") && slices.Contains(args, ns) {
			out = append(out, pid)
		}
	}
	return out
}

// parent is the parent process of pid: the shim, for a container's first process.
func parent(t *testing.T, pid uint32) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command may hold spaces and parentheses: the fields follow the last ')'.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return ppid
}

func waitShims(t *testing.T, ns string, want int) []int {
	t.Helper()
	var got []int
	testenv.Eventually(t, 10*time.Second, func() error {
		if got = shimPIDs(t, ns); len(got) != want {
			return fmt.Errorf("%d shims (%v), want %d", len(got), got, want)
		}
		return nil
	})
	return got
}

// A pod's pause and app containers share one shim process, as containerd's CRI groups a sandbox;
// the shim outlives the pause task while it serves the pod's containers (the orphan-shim reaper
// leaves it), and it exits once the pod is removed.
func TestPodHasOneShim(t *testing.T) {
	rt := testenv.NewRuntime(t)
	rp, err := rt.RunPod(rt.Ctx, newPod("one-shim", busybox("a", "sleep", "3600"), busybox("b", "sleep", "3600")))
	if err != nil {
		t.Fatal(err)
	}
	shims := waitShims(t, rt.Config.Namespace, 1)
	for name, pid := range map[string]uint32{"pause": rp.Sandbox.PID, "a": rp.Containers[0].PID, "b": rp.Containers[1].PID} {
		if got := parent(t, pid); got != shims[0] {
			t.Errorf("%s (pid %d) is a child of %d, want the pod's shim %d", name, pid, got, shims[0])
		}
	}

	// The shim is named after the pause task; with that task gone it still serves a and b.
	sb, err := rt.Client().LoadContainer(rt.Ctx, rp.Sandbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	task, err := sb.Task(rt.Ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Delete(rt.Ctx, containerd.WithProcessKill); err != nil {
		t.Fatal(err)
	}
	if err := rt.ReapOrphanShims(rt.Ctx, "/run/containerd"); err != nil {
		t.Fatal(err)
	}
	for _, c := range rp.Containers {
		if !rt.ContainerRunning(rt.Ctx, c.ID) {
			t.Errorf("container %s stopped when its pod's pause task went", c.Name)
		}
	}
	if got := shimPIDs(t, rt.Config.Namespace); !slices.Equal(got, shims) {
		t.Errorf("shims %v after the pause task went, want %v", got, shims)
	}

	if err := rt.RemovePod(rt.Ctx, rp.Sandbox.Pod, time.Second); err != nil {
		t.Fatal(err)
	}
	waitShims(t, rt.Config.Namespace, 0)
}

// A pod that an agent before shim groups started (one shim per task) is found, runs on, takes a
// new container instance into its pause's shim, and is stopped and removed cleanly by an agent
// that groups.
func TestPodOfShimPerContainerLayoutIsReadopted(t *testing.T) {
	rt := testenv.NewRuntime(t)
	runtime.UseShimPerContainer(rt.Runtime, true)
	pod := newPod("old-layout", busybox("c", "sleep", "3600"))
	rp, err := rt.RunPod(rt.Ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	waitShims(t, rt.Config.Namespace, 2)
	pauseShim := parent(t, rp.Sandbox.PID)
	if parent(t, rp.Containers[0].PID) == pauseShim {
		t.Fatal("the old layout shares a shim")
	}

	runtime.UseShimPerContainer(rt.Runtime, false) // the agent is upgraded
	sbs, err := rt.PodSandboxes(rt.Ctx, string(pod.UID))
	if err != nil || len(sbs) != 1 || !sbs[0].Ready() {
		t.Fatalf("sandboxes of the old pod: %v, %v", sbs, err)
	}
	ctrs, err := rt.PodContainers(rt.Ctx, string(pod.UID))
	if err != nil || len(ctrs) != 1 || ctrs[0].State != runtime.ContainerRunning {
		t.Fatalf("containers of the old pod: %v, %v", ctrs, err)
	}
	if err := rt.ReapOrphanShims(rt.Ctx, "/run/containerd"); err != nil {
		t.Fatal(err)
	}
	waitShims(t, rt.Config.Namespace, 2)

	// The container's next instance joins the pause's shim: no third shim.
	if err := rt.StopContainer(rt.Ctx, ctrs[0].ID, time.Second); err != nil {
		t.Fatal(err)
	}
	waitShims(t, rt.Config.Namespace, 1)
	next, err := rt.CreateContainer(rt.Ctx, sbs[0], pod, &pod.Spec.Containers[0], runtime.ContainerOptions{RestartCount: 1, SpecHash: runtime.ContainerHash(&pod.Spec.Containers[0])})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(rt.Ctx, next); err != nil {
		t.Fatal(err)
	}
	if got := parent(t, next.PID); got != pauseShim {
		t.Errorf("the new instance is a child of %d, want the pause's shim %d", got, pauseShim)
	}
	waitShims(t, rt.Config.Namespace, 1)
	if out := exec(t, rt, next, "hostname"); out != "old-layout" {
		t.Errorf("hostname %q in the new instance", out)
	}

	if err := rt.RemovePod(rt.Ctx, rp.Sandbox.Pod, time.Second); err != nil {
		t.Fatal(err)
	}
	waitShims(t, rt.Config.Namespace, 0)
}
