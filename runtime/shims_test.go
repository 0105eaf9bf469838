package runtime_test

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/podagent/podagent/internal/testenv"
)

// A shim that serves no task (what containerd 1.6 leaves when a client dies mid-NewTask) is
// stopped and its bundle removed; the shims of running containers are left alone.
func TestReapOrphanShims(t *testing.T) {
	rt := testenv.NewRuntime(t)
	rp, err := rt.RunPod(rt.Ctx, newPod("alive", busybox("c", "sleep", "3600")))
	if err != nil {
		t.Fatal(err)
	}
	goTool, err := osexec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "the go tool is not on PATH")
	}
	// A process that looks like a shim of the test's namespace: a sleeper named as the shim.
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\nimport \"time\"\nfunc main() { time.Sleep(time.Hour) }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(dir, "containerd-shim-runc-v2")
	if out, err := osexec.Command(goTool, "build", "-o", shim, src).CombinedOutput(); err != nil {
		t.Fatalf("build the fake shim: %v\n%s", err, out)
	}
	orphan := osexec.Command(shim, "-namespace", rt.Config.Namespace, "-id", "orphan-task", "-address", "/nowhere")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = orphan.Wait(); close(exited) }()
	t.Cleanup(func() { _ = orphan.Process.Kill() })
	// A bundle directory whose shim is gone already, in a containerd state dir of the test's own.
	state := filepath.Join(dir, "state")
	bundle := filepath.Join(state, "io.containerd.runtime.v2.task", rt.Config.Namespace, "orphan-bundle")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}

	if err := rt.ReapOrphanShims(rt.Ctx, state); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the orphan shim still runs")
	}
	if _, err := os.Stat(bundle); !os.IsNotExist(err) {
		t.Errorf("orphan bundle %s left (%v)", bundle, err)
	}
	// The real containerd state: the running pod's shims have tasks and stay.
	if err := rt.ReapOrphanShims(rt.Ctx, "/run/containerd"); err != nil {
		t.Fatal(err)
	}
	for _, c := range rp.Containers {
		if !rt.ContainerRunning(rt.Ctx, c.ID) {
			t.Errorf("container %s stopped by the reaper", c.Name)
		}
	}
}
