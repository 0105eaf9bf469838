package runtime_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/runtime"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newPod(name string, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name + "-" + testenv.Suffix(8))},
		Spec:       corev1.PodSpec{Containers: containers},
	}
}

func busybox(name string, cmd ...string) corev1.Container {
	return corev1.Container{Name: name, Image: "busybox", Command: cmd}
}

// exec runs cmd in ctr and returns its stdout, failing t on a non-zero exit.
func exec(t *testing.T, rt *testenv.Runtime, ctr *runtime.Container, cmd ...string) string {
	t.Helper()
	out, code := execCode(t, rt, ctr, cmd...)
	if code != 0 {
		t.Fatalf("exec %q in %s: exit %d: %s", cmd, ctr.Name, code, out)
	}
	return out
}

func execCode(t *testing.T, rt *testenv.Runtime, ctr *runtime.Container, cmd ...string) (string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code, err := rt.Exec(rt.Ctx, ctr.ID, runtime.ExecOptions{Cmd: cmd, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatalf("exec %q in %s: %v", cmd, ctr.Name, err)
	}
	return strings.TrimSpace(stdout.String() + stderr.String()), code
}

func nsInode(t *testing.T, pid uint32, ns string) string {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatal(err)
	}
	return link
}

// Acceptance 1: a pod's containers share net, UTS and IPC with the pause process, and nothing else.
func TestTwoContainersShareNetUTSIPC(t *testing.T) {
	rt := testenv.NewRuntime(t)
	pod := newPod("two-containers",
		busybox("a", "sh", "-c", "mkdir /www && echo hello-from-a > /www/index.html && echo x > /tmp/a-was-here && exec httpd -f -p 8080 -h /www"),
		busybox("b", "sleep", "3600"),
	)
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
	rp, err := rt.RunPod(rt.Ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	a, b := rp.Containers[0], rp.Containers[1]
	pause := rp.Sandbox.PID

	for _, ns := range []string{"net", "uts", "ipc"} {
		want := nsInode(t, pause, ns)
		for _, c := range []*runtime.Container{a, b} {
			if got := nsInode(t, c.PID, ns); got != want {
				t.Errorf("%s namespace of container %s = %s, pause has %s", ns, c.Name, got, want)
			}
		}
	}
	for _, ns := range []string{"mnt", "pid"} {
		seen := map[string]string{}
		for name, pid := range map[string]uint32{"pause": pause, "a": a.PID, "b": b.PID} {
			ino := nsInode(t, pid, ns)
			if other, dup := seen[ino]; dup {
				t.Errorf("%s namespace shared by %s and %s", ns, name, other)
			}
			seen[ino] = name
		}
		if host := nsInode(t, uint32(os.Getpid()), ns); seen[host] != "" {
			t.Errorf("%s namespace of %s is the host's", ns, seen[host])
		}
	}
	for _, c := range []*runtime.Container{a, b} {
		if got := exec(t, rt, c, "hostname"); got != pod.Name {
			t.Errorf("hostname in %s = %q, want %q", c.Name, got, pod.Name)
		}
		if got := exec(t, rt, c, "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1"); got != rp.Sandbox.IPs[0] {
			t.Errorf("eth0 address in %s = %q, want pod IP %q", c.Name, got, rp.Sandbox.IPs[0])
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		out, code := execCode(t, rt, b, "wget", "-qO-", "http://localhost:8080/")
		if code != 0 || out != "hello-from-a" {
			return fmt.Errorf("wget localhost:8080 from b: exit %d: %q", code, out)
		}
		return nil
	})
	if out, code := execCode(t, rt, b, "cat", "/tmp/a-was-here"); code == 0 {
		t.Errorf("b sees a's file /tmp/a-was-here (%q): filesystems must be isolated", out)
	}
	exec(t, rt, a, "cat", "/tmp/a-was-here")
	if got := exec(t, rt, b, "cat", "/etc/hosts"); !strings.Contains(got, rp.Sandbox.IPs[0]+"\t"+pod.Name) {
		t.Errorf("/etc/hosts lacks the pod's own entry:\n%s", got)
	}
}

// emptyDir volumes are what containers of a pod do share.
func TestEmptyDirShared(t *testing.T) {
	rt := testenv.NewRuntime(t)
	pod := newPod("shared-volume",
		busybox("writer", "sh", "-c", "echo shared > /data/f && sleep 3600"),
		busybox("reader", "sleep", "3600"),
	)
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	}
	rp, err := rt.RunPod(rt.Ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if out, code := execCode(t, rt, rp.Containers[1], "cat", "/data/f"); code != 0 || out != "shared" {
			return fmt.Errorf("reader: /data/f: exit %d %q", code, out)
		}
		return nil
	})
}

// Acceptance 2: a port claimed twice is refused before anything starts.
func TestDuplicatePortRejected(t *testing.T) {
	rt := testenv.NewRuntime(t)
	pod := newPod("dup-port", busybox("a", "sleep", "3600"), busybox("b", "sleep", "3600"))
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}
	pod.Spec.Containers[1].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
	_, err := rt.RunPod(rt.Ctx, pod)
	var invalid *runtime.InvalidPodError
	if !errors.As(err, &invalid) {
		t.Fatalf("RunPod: %v, want an InvalidPodError", err)
	}
	if len(invalid.Errs) != 1 || invalid.Errs[0].Field != "spec.containers[1].ports[0].containerPort" {
		t.Fatalf("errors %v: want one at spec.containers[1].ports[0].containerPort", invalid.Errs)
	}
	if !strings.Contains(err.Error(), "spec.containers[1].ports[0].containerPort") {
		t.Errorf("error %q does not name the field", err)
	}
	rt.AssertNothingLeft(t)
}

// Acceptance 3: two pods get different IPs and reach each other by IP.
func TestPodsReachEachOther(t *testing.T) {
	rt := testenv.NewRuntime(t)
	server, err := rt.RunPod(rt.Ctx, newPod("kubia", corev1.Container{Name: "kubia", Image: "luksa/kubia"}))
	if err != nil {
		t.Fatal(err)
	}
	client, err := rt.RunPod(rt.Ctx, newPod("client", busybox("c", "sleep", "3600")))
	if err != nil {
		t.Fatal(err)
	}
	if server.Sandbox.IPs[0] == client.Sandbox.IPs[0] {
		t.Fatalf("both pods have IP %s", server.Sandbox.IPs[0])
	}
	url := "http://" + server.Sandbox.IPs[0] + ":8080/"
	testenv.Eventually(t, 10*time.Second, func() error {
		out, code := execCode(t, rt, client.Containers[0], "wget", "-qO-", url)
		if code != 0 || out != "You've hit kubia" {
			return fmt.Errorf("wget %s: exit %d: %q", url, code, out)
		}
		return nil
	})
}

// Acceptance 4: removing a pod leaves nothing behind.
func TestRemovePodLeavesNothing(t *testing.T) {
	rt := testenv.NewRuntime(t)
	pod := newPod("short-lived", busybox("a", "sleep", "3600"), busybox("b", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"))
	pod.Spec.Volumes = []corev1.Volume{{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "mem", MountPath: "/mem"}}
	if _, err := rt.RunPod(rt.Ctx, pod); err != nil {
		t.Fatal(err)
	}
	ref := runtime.PodRef{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}
	if err := rt.RemovePod(rt.Ctx, ref, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	rt.AssertNothingLeft(t)
	if err := rt.RemovePod(rt.Ctx, ref, time.Second); err != nil {
		t.Fatalf("removing a removed pod: %v", err)
	}
}

// Acceptance 5: a failure midway leaves nothing behind and says which container failed and why.
func TestFailureMidwayLeavesNothing(t *testing.T) {
	rt := testenv.NewRuntime(t)
	cases := []struct {
		name   string
		second corev1.Container
		want   []string
	}{
		{"missing image", corev1.Container{Name: "ghost", Image: "example.invalid/nope:1"}, []string{`"ghost"`, "not present"}},
		{"missing command", busybox("nocmd", "/no/such/binary"), []string{`"nocmd"`, "/no/such/binary"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rt.RunPod(rt.Ctx, newPod("midway", busybox("ok", "sleep", "3600"), tc.second))
			if err == nil {
				t.Fatal("RunPod succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %s", err, w)
				}
			}
			rt.AssertNothingLeft(t)
		})
	}
}

// Acceptance 6 (runtime level): two runtimes with their own namespaces and networks do not see
// or touch each other's pods.
func TestTwoRuntimesSideBySide(t *testing.T) {
	one, two := testenv.NewRuntime(t), testenv.NewRuntime(t)
	p1, err := one.RunPod(one.Ctx, newPod("same-name", busybox("a", "sleep", "3600")))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := two.RunPod(two.Ctx, newPod("same-name", busybox("a", "sleep", "3600")))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rt   *testenv.Runtime
		want string
	}{{one, p1.Sandbox.ID}, {two, p2.Sandbox.ID}} {
		sbs, err := c.rt.ListSandboxes(c.rt.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(sbs) != 1 || sbs[0].ID != c.want {
			t.Errorf("runtime %s lists sandboxes %v, want only %s", c.rt.Config.Namespace, sbs, c.want)
		}
	}
	one.RemoveAll(t)
	one.AssertNothingLeft(t)
	ctrs, err := two.ListContainers(two.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ctrs) != 1 || ctrs[0].State != runtime.ContainerRunning {
		t.Fatalf("the other runtime's pod was touched: %+v", ctrs)
	}
}

// runAsUser without runAsGroup takes the primary group from the image's /etc/passwd, as CRI does
// (busybox's passwd has no uid 1000, so the group is 0).
func TestRunAsUser(t *testing.T) {
	rt := testenv.NewRuntime(t)
	uid, gid := int64(1000), int64(3000)
	pod := newPod("run-as", busybox("only-user", "sleep", "3600"), busybox("user-and-group", "sleep", "3600"))
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: &uid}
	pod.Spec.Containers[1].SecurityContext = &corev1.SecurityContext{RunAsUser: &uid, RunAsGroup: &gid}
	rp, err := rt.RunPod(rt.Ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"1000 0", "1000 3000"} {
		if got := exec(t, rt, rp.Containers[i], "sh", "-c", "echo $(id -u) $(id -g)"); got != want {
			t.Errorf("%s: uid gid %q, want %q", rp.Containers[i].Name, got, want)
		}
	}
}
