package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podagent/podagent/agent"
	"github.com/podagent/podagent/apiserver/registry"
	"github.com/podagent/podagent/apiserver/store"
	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/internal/testimages"
	"github.com/podagent/podagent/runtime"
	"github.com/podagent/podagent/serve"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// testAgent is an agent running in-process with settings of its own, in standalone mode: with
// the embedded API it reaches as a client.
type testAgent struct {
	cfg  agent.Config
	rt   *testenv.Runtime
	n    *serve.Node
	a    *agent.Agent
	stop func()
}

// store is the embedded API's store, for tests that look beneath the API.
func (ta *testAgent) store() *store.Store { return ta.n.ControlPlane.Store() }

// registry applies the embedded API's rules, as a request through the API would.
func (ta *testAgent) registry() *registry.Registry { return ta.n.ControlPlane.Registry() }

// testConfig is an agent configuration of t's own: its own directories, containerd namespace, pod
// network, and a docker.io mirror on 127.0.0.1 holding busybox and luksa/kubia.
func testConfig(t testing.TB, node string) agent.Config {
	t.Helper()
	testenv.RequireContainerd(t)
	dir := t.TempDir()
	base := testenv.RuntimeConfig(dir)
	netOpts := testenv.NetworkOptions(dir)
	cfg := agent.DefaultConfig()
	cfg.RootDir, cfg.RunDir, cfg.LogDir = base.RootDir, base.RunDir, base.LogDir
	cfg.ContainerdAddress, cfg.ContainerdNamespace = base.Address, base.Namespace
	cfg.PodCIDR, cfg.BridgeName = netOpts.Subnet, netOpts.Bridge
	cfg.NodeName = node
	cfg.ManifestDir = filepath.Join(dir, "manifests")
	cfg.PauseImage = testimages.PauseImage
	cfg.ImageArchives = []string{testenv.ImageArchive(t)}
	cfg.ResolvConf = base.ResolvConf
	cfg.RegistryMirrors = map[string][]string{"docker.io": {testenv.DockerHubMirror(t)}}
	cfg.Listen = "127.0.0.1:0"
	if err := os.MkdirAll(cfg.ManifestDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startAgent(t testing.TB, node string) *testAgent {
	t.Helper()
	return startAgentWith(t, testConfig(t, node))
}

func startAgentWith(t testing.TB, cfg agent.Config) *testAgent {
	t.Helper()
	// The harness runtime sees what the agent runs and, after the agent stops (cleanups run last
	// registered first), removes it and checks that nothing leaked.
	ta := &testAgent{cfg: cfg, rt: testenv.NewRuntimeWith(t, agent.RuntimeConfig(cfg), agent.NetworkOptions(cfg))}
	ta.start(t)
	t.Cleanup(func() { ta.stop() })
	return ta
}

func (ta *testAgent) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n, err := serve.Start(ctx, ta.cfg)
	if err != nil {
		cancel()
		t.Fatalf("start agent: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	ta.n, ta.a = n, n.Agent
	ta.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent %s: %v", ta.cfg.NodeName, err)
		}
		if err := n.Close(); err != nil {
			t.Errorf("close agent %s: %v", ta.cfg.NodeName, err)
		}
		ta.stop = func() {}
	}
}

// restart stops the agent (its pods keep running) and starts a new one with the same settings.
func (ta *testAgent) restart(t testing.TB) {
	t.Helper()
	ta.stop()
	ta.start(t)
}

func (ta *testAgent) writeManifest(t testing.TB, name, body string) {
	t.Helper()
	// Written aside and renamed into place, so the agent never reads half a file.
	tmp := filepath.Join(ta.cfg.ManifestDir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(ta.cfg.ManifestDir, name)); err != nil {
		t.Fatal(err)
	}
}

func (ta *testAgent) create(t testing.TB, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	p, err := ta.registry().CreatePod(context.Background(), pod)
	if err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	return p
}

// pod is the stored pod, or nil if there is none.
func (ta *testAgent) pod(t testing.TB, namespace, name string) *corev1.Pod {
	t.Helper()
	obj, err := ta.store().Get(context.Background(), store.Pods, namespace, name)
	if err != nil {
		return nil
	}
	return obj.(*corev1.Pod)
}

// waitPod polls the stored pod until check accepts it, and returns it.
func (ta *testAgent) waitPod(t testing.TB, namespace, name string, timeout time.Duration, check func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	testenv.Eventually(t, timeout, func() error {
		p = ta.pod(t, namespace, name)
		if p == nil {
			return fmt.Errorf("pod %s/%s does not exist", namespace, name)
		}
		return check(p)
	})
	return p
}

// running accepts a pod whose phase is Running and whose every container is ready.
func running(p *corev1.Pod) error {
	if p.Status.Phase != corev1.PodRunning {
		return fmt.Errorf("phase %q, containers %s", p.Status.Phase, describeContainers(p))
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready || cs.State.Running == nil {
			return fmt.Errorf("container %s not ready: %s", cs.Name, describeContainers(p))
		}
	}
	if len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return fmt.Errorf("%d container statuses for %d containers", len(p.Status.ContainerStatuses), len(p.Spec.Containers))
	}
	return nil
}

func describeContainers(p *corev1.Pod) string {
	s := ""
	for _, cs := range p.Status.ContainerStatuses {
		st := "?"
		switch {
		case cs.State.Running != nil:
			st = "running"
		case cs.State.Waiting != nil:
			st = "waiting " + cs.State.Waiting.Reason + " " + cs.State.Waiting.Message
		case cs.State.Terminated != nil:
			st = fmt.Sprintf("terminated %s %d", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		}
		s += fmt.Sprintf("[%s: %s, restarts %d] ", cs.Name, st, cs.RestartCount)
	}
	return s
}

// containerStatus is the status of the named container, zero if the pod has none yet.
func containerStatus(p *corev1.Pod, name string) corev1.ContainerStatus {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == name {
			return cs
		}
	}
	return corev1.ContainerStatus{}
}

// gone accepts when the pod's object is gone and the runtime has nothing of it.
func (ta *testAgent) waitGone(t testing.TB, namespace, name string, uid string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		if p := ta.pod(t, namespace, name); p != nil && string(p.UID) == uid {
			return fmt.Errorf("pod %s/%s still stored (deletionTimestamp %v)", namespace, name, p.DeletionTimestamp)
		}
		sbs, err := ta.rt.PodSandboxes(ta.rt.Ctx, uid)
		if err != nil || len(sbs) > 0 {
			return fmt.Errorf("pod %s still has %d sandboxes (%v)", name, len(sbs), err)
		}
		ctrs, err := ta.rt.PodContainers(ta.rt.Ctx, uid)
		if err != nil || len(ctrs) > 0 {
			return fmt.Errorf("pod %s still has %d containers (%v)", name, len(ctrs), err)
		}
		return nil
	})
}

func newPod(name string, containers ...corev1.Container) *corev1.Pod {
	grace := int64(2)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: containers, TerminationGracePeriodSeconds: &grace},
	}
}

func busybox(name string, cmd ...string) corev1.Container {
	return corev1.Container{Name: name, Image: "busybox", Command: cmd}
}

// runtimeContainers are the pod's containers as containerd has them.
func (ta *testAgent) runtimeContainers(t testing.TB, uid string) []*runtime.Container {
	t.Helper()
	ctrs, err := ta.rt.PodContainers(ta.rt.Ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	return ctrs
}

// waitPodSince replays the pod's changes since resourceVersion fromRV, then follows new ones,
// until check accepts a state of the pod. It returns that state, whose resourceVersion is where the
// next wait may start: a test sees each state the pod went through, however briefly it lasted.
func (ta *testAgent) waitPodSince(t testing.TB, namespace, name, fromRV string, timeout time.Duration, check func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ch, err := ta.store().Watch(ctx, store.Pods, namespace, fromRV)
	if err != nil {
		t.Fatalf("watch pods: %v", err)
	}
	last := fmt.Errorf("pod %s/%s did not change", namespace, name)
	for ev := range ch {
		p := ev.Object.(*corev1.Pod)
		if p.Name != name {
			continue
		}
		if last = check(p); last == nil {
			return p
		}
	}
	t.Fatalf("pod %s/%s: condition not met within %s: %v", namespace, name, timeout, last)
	return nil
}
