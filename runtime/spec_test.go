package runtime

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func generate(t *testing.T, opts []oci.SpecOpts) *oci.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "test")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testPod(c corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubia-manual", UID: "u1"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
	}
}

func containerSpec(t *testing.T, c corev1.Container, img ocispec.ImageConfig, limits Limits) *oci.Spec {
	t.Helper()
	pod := testPod(c)
	opts, err := containerSpecOpts(containerSpecInput{
		Pod: pod, Container: &pod.Spec.Containers[0], Image: img,
		NetNSPath: "/run/netns/x", ShmPath: "/run/sb/shm", SandboxPID: 42, PodDir: "/pods/u1",
		VolumePath: func(name string) (string, error) { return "/vol/" + name, nil },
		Limits:     limits,
	})
	if err != nil {
		t.Fatal(err)
	}
	return generate(t, opts)
}

func TestContainerArgs(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"--default"}, Env: []string{"GREETING=hi"}}
	cases := []struct {
		name      string
		cmd, args []string
		env       []corev1.EnvVar
		want      string
	}{
		{"image defaults", nil, nil, nil, "/entry --default"},
		{"args replace cmd", nil, []string{"--x"}, nil, "/entry --x"},
		{"command replaces entrypoint and cmd", []string{"/bin/sh"}, nil, nil, "/bin/sh"},
		{"command and args", []string{"/bin/sh"}, []string{"-c", "true"}, nil, "/bin/sh -c true"},
		{"expansion", []string{"echo"}, []string{"$(GREETING)", "$(NAME)", "$(UNSET)", "$$(NAME)"}, []corev1.EnvVar{{Name: "NAME", Value: "$(GREETING)-there"}}, "echo hi hi-there $(UNSET) $(NAME)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := containerSpec(t, corev1.Container{Name: "c", Image: "x", Command: tc.cmd, Args: tc.args, Env: tc.env}, img, Limits{})
			if got := strings.Join(s.Process.Args, " "); got != tc.want {
				t.Fatalf("args %q, want %q", got, tc.want)
			}
		})
	}
}

func TestContainerSpecNamespacesAndMounts(t *testing.T) {
	s := containerSpec(t, corev1.Container{
		Name: "c", Image: "x", WorkingDir: "/work",
		Env:          []corev1.EnvVar{{Name: "PATH", Value: "/custom"}},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data", ReadOnly: true}},
	}, ocispec.ImageConfig{Cmd: []string{"run"}, Env: []string{"PATH=/bin", "A=1"}, WorkingDir: "/img"}, Limits{})

	ns := map[specs.LinuxNamespaceType]string{}
	for _, n := range s.Linux.Namespaces {
		ns[n.Type] = n.Path
	}
	want := map[specs.LinuxNamespaceType]string{
		specs.NetworkNamespace: "/run/netns/x",
		specs.UTSNamespace:     "/proc/42/ns/uts",
		specs.IPCNamespace:     "/proc/42/ns/ipc",
		specs.PIDNamespace:     "",
		specs.MountNamespace:   "",
	}
	for typ, path := range want {
		if got, ok := ns[typ]; !ok || got != path {
			t.Errorf("%s namespace: %q (present %v), want %q", typ, got, ok, path)
		}
	}
	if s.Hostname != "kubia-manual" || s.Process.Cwd != "/work" {
		t.Errorf("hostname %q cwd %q", s.Hostname, s.Process.Cwd)
	}
	if got := strings.Join(s.Process.Env, " "); got != "PATH=/custom A=1 HOSTNAME=kubia-manual" {
		t.Errorf("env %q", got)
	}
	mounts := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		mounts[m.Destination] = m
	}
	for dst, src := range map[string]string{"/etc/hosts": "/pods/u1/etc-hosts", "/etc/hostname": "/pods/u1/hostname", "/etc/resolv.conf": "/pods/u1/resolv.conf", "/dev/shm": "/run/sb/shm", "/data": "/vol/data"} {
		if mounts[dst].Source != src {
			t.Errorf("mount %s from %q, want %q", dst, mounts[dst].Source, src)
		}
	}
	if !strings.Contains(strings.Join(mounts["/data"].Options, ","), "ro") {
		t.Errorf("readOnly volume mounted with %v", mounts["/data"].Options)
	}
}

func TestContainerSpecNoCommand(t *testing.T) {
	pod := testPod(corev1.Container{Name: "c", Image: "x"})
	_, err := containerSpecOpts(containerSpecInput{Pod: pod, Container: &pod.Spec.Containers[0], VolumePath: func(string) (string, error) { return "", nil }})
	if err == nil || !strings.Contains(err.Error(), `container "c"`) {
		t.Fatalf("err %v, want one naming the container", err)
	}
}

func TestResourcesAndClamp(t *testing.T) {
	c := corev1.Container{Name: "c", Image: "x", Command: []string{"run"}, Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}}
	// Limits only: requests default to limits, so the pod is Guaranteed (-997), clamped to 0.
	s := containerSpec(t, c, ocispec.ImageConfig{}, Limits{MinOOMScoreAdj: 0, MaxNofile: 512})
	r := s.Linux.Resources
	if *r.CPU.Shares != 512 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || *r.Memory.Limit != 64<<20 {
		t.Errorf("resources: shares %d quota %d period %d memory %d", *r.CPU.Shares, *r.CPU.Quota, *r.CPU.Period, *r.Memory.Limit)
	}
	if *s.Process.OOMScoreAdj != 0 {
		t.Errorf("oom_score_adj %d, want it clamped to the agent's 0", *s.Process.OOMScoreAdj)
	}
	for _, rl := range s.Process.Rlimits {
		if rl.Type == "RLIMIT_NOFILE" && (rl.Hard > 512 || rl.Soft > 512) {
			t.Errorf("RLIMIT_NOFILE %d/%d above the agent's hard limit 512", rl.Soft, rl.Hard)
		}
	}
}

func TestQOSAndOOMScore(t *testing.T) {
	q := func(s string) resource.Quantity { return resource.MustParse(s) }
	cases := []struct {
		name string
		res  corev1.ResourceRequirements
		qos  corev1.PodQOSClass
		oom  int
	}{
		{"best effort", corev1.ResourceRequirements{}, corev1.PodQOSBestEffort, 1000},
		{"guaranteed", corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": q("1"), "memory": q("1Gi")}}, corev1.PodQOSGuaranteed, -997},
		{"burstable, half the machine", corev1.ResourceRequirements{Requests: corev1.ResourceList{"memory": q("4Gi")}}, corev1.PodQOSBurstable, 500},
		{"burstable, tiny request", corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("10m")}}, corev1.PodQOSBurstable, 999},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod(corev1.Container{Name: "c", Resources: tc.res})
			if got := QOSClass(pod); got != tc.qos {
				t.Errorf("QOS %s, want %s", got, tc.qos)
			}
			if got := oomScoreAdj(pod, &pod.Spec.Containers[0], 8<<30); got != tc.oom {
				t.Errorf("oom_score_adj %d, want %d", got, tc.oom)
			}
		})
	}
}

func TestHostsFile(t *testing.T) {
	pod := testPod(corev1.Container{})
	pod.Spec.HostAliases = []corev1.HostAlias{{IP: "10.1.1.1", Hostnames: []string{"foo", "bar"}}}
	want := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n" +
		"10.244.0.5\tkubia-manual\n\n# Entries added by HostAliases.\n10.1.1.1\tfoo\tbar\n"
	if got := string(hostsFile(pod, []string{"10.244.0.5"})); got != want {
		t.Fatalf("hosts file:\n%s\nwant:\n%s", got, want)
	}
}

func TestSandboxSpec(t *testing.T) {
	pod := testPod(corev1.Container{})
	opts, err := sandboxSpecOpts(sandboxSpecInput{Pod: pod, Image: ocispec.ImageConfig{Entrypoint: []string{"/pause"}}, NetNSPath: "/run/netns/x", ShmPath: "/run/sb/shm", Limits: Limits{MinOOMScoreAdj: -500}})
	if err != nil {
		t.Fatal(err)
	}
	s := generate(t, opts)
	if s.Hostname != "kubia-manual" || !s.Root.Readonly || len(s.Process.Capabilities.Bounding) != 0 {
		t.Errorf("hostname %q readonly %v caps %v", s.Hostname, s.Root.Readonly, s.Process.Capabilities.Bounding)
	}
	if *s.Process.OOMScoreAdj != -500 {
		t.Errorf("pause oom_score_adj %d, want -998 clamped to -500", *s.Process.OOMScoreAdj)
	}
	shm := 0
	for _, m := range s.Mounts {
		if m.Destination == "/dev/shm" {
			shm++
			if m.Source != "/run/sb/shm" {
				t.Errorf("/dev/shm from %q", m.Source)
			}
		}
	}
	if shm != 1 {
		t.Errorf("%d /dev/shm mounts, want exactly the sandbox's", shm)
	}
}
