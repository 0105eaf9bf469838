package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// Limits are what this host lets the agent give its containers. The sandboxes podagent runs in
// may lack CAP_SYS_RESOURCE: asking for an oom_score_adj below the agent's own, or an rlimit above
// its hard limit, then makes runc fail, so such values are clamped (as containerd's
// restrict_oom_score_adj does).
type Limits struct {
	MinOOMScoreAdj int
	MaxNofile      uint64
	MemoryCapacity int64
}

// sandboxSpecInput is everything the pause container's spec depends on.
type sandboxSpecInput struct {
	Pod *corev1.Pod
	// ShimGroup names the shim that serves the pod's tasks (see withShimGroup); empty for a
	// shim of the sandbox's own.
	ShimGroup string
	Image     ocispec.ImageConfig
	NetNSPath string
	ShmPath   string
	Limits    Limits
}

// sandboxSpecOpts builds the pause container's spec: its own UTS (hostname = pod), IPC, PID and
// mount namespaces, in the pod's network namespace, with no capabilities at all. Pure: it only
// describes, so it can be tested without containerd.
func sandboxSpecOpts(in sandboxSpecInput) ([]oci.SpecOpts, error) {
	args := append(append([]string{}, in.Image.Entrypoint...), in.Image.Cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("pause image of pod %s/%s has no entrypoint", in.Pod.Namespace, in.Pod.Name)
	}
	return []oci.SpecOpts{
		oci.WithProcessArgs(args...),
		oci.WithEnv(in.Image.Env),
		oci.WithHostname(podHostname(in.Pod)),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.NetNSPath}),
		oci.WithCapabilities(nil),
		oci.WithRootFSReadonly(),
		withShm(in.ShmPath),
		withOOMScoreAdj(sandboxOOMScoreAdj),
		withClamp(in.Limits),
		withShimGroup(in.ShimGroup),
	}, nil
}

// containerSpecInput is everything an app container's spec depends on.
type containerSpecInput struct {
	Pod *corev1.Pod
	// ShimGroup names the shim that serves the pod's tasks (see withShimGroup).
	ShimGroup  string
	Container  *corev1.Container
	Image      ocispec.ImageConfig
	NetNSPath  string
	ShmPath    string
	SandboxPID uint32
	// PodDir holds etc-hosts, hostname and resolv.conf.
	PodDir string
	// VolumePath returns the host path of the pod volume named name.
	VolumePath func(name string) (string, error)
	Limits     Limits
}

// containerSpecOpts builds an app container's spec: Kubernetes command/args semantics over the
// image's, the image's env overridden by the container's, the sandbox's network, UTS and IPC
// namespaces joined, and its own PID and mount namespaces and root filesystem.
func containerSpecOpts(in containerSpecInput) ([]oci.SpecOpts, error) {
	c, pod := in.Container, in.Pod
	env := containerEnv(in.Image.Env, c.Env, podHostname(pod))
	lookup := envLookup(env)
	args := containerArgs(c, in.Image, lookup)
	if len(args) == 0 {
		return nil, fmt.Errorf("container %q of pod %s/%s: no command specified and the image has no entrypoint or cmd", c.Name, pod.Namespace, pod.Name)
	}
	cwd := in.Image.WorkingDir
	if c.WorkingDir != "" {
		cwd = c.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	mounts, err := containerMounts(in)
	if err != nil {
		return nil, err
	}
	pidNS := fmt.Sprintf("/proc/%d/ns", in.SandboxPID)
	opts := []oci.SpecOpts{
		oci.WithProcessArgs(args...),
		oci.WithProcessCwd(cwd),
		oci.WithEnv(env),
		oci.WithHostname(podHostname(pod)),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.NetNSPath}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UTSNamespace, Path: filepath.Join(pidNS, "uts")}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: filepath.Join(pidNS, "ipc")}),
		oci.WithMounts(mounts),
		withResources(c),
		withOOMScoreAdj(oomScoreAdj(pod, c, in.Limits.MemoryCapacity)),
		withShimGroup(in.ShimGroup),
	}
	opts = append(opts, userOpts(pod, c, in.Image)...)
	if sc := c.SecurityContext; sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	return append(opts, withClamp(in.Limits)), nil
}

// AnnotationShimGroup is the annotation by which containerd's runc v2 shim serves several tasks
// from one process: a task whose spec carries a group is handed to the shim already listening on
// that group's socket, or starts it. containerd 1.6's shim reads it (and CRI's
// io.kubernetes.cri.sandbox-id) from the bundle's config.json when it is started.
const AnnotationShimGroup = "io.containerd.runc.v2.group"

// withShimGroup puts a task in shim group: podagent groups a pod's pause and app containers by the
// sandbox ID, as containerd's CRI does, so that a pod costs one shim (some 13 MiB) instead of one
// per container. The shim's socket is derived from the group exactly as from a task ID, so a
// container of a sandbox started before grouping (pause in a shim of its own, whose ID is the
// group) joins the pause's shim too.
func withShimGroup(group string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		if group == "" {
			return nil
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[AnnotationShimGroup] = group
		return nil
	}
}

// containerArgs applies Kubernetes semantics: command replaces the image's ENTRYPOINT, args
// replace its CMD, and $(VAR) in either is expanded from the container's environment.
func containerArgs(c *corev1.Container, img ocispec.ImageConfig, lookup func(string) (string, bool)) []string {
	var command, args []string
	for _, s := range c.Command {
		command = append(command, expand(s, lookup))
	}
	for _, s := range c.Args {
		args = append(args, expand(s, lookup))
	}
	if len(command) == 0 {
		command = img.Entrypoint
		if len(args) == 0 {
			args = img.Cmd
		}
	}
	return append(append([]string{}, command...), args...)
}

// containerEnv is the image's environment, then HOSTNAME as CRI sets it, then the container's
// variables in order, each expanded against those before it; later definitions win.
func containerEnv(imageEnv []string, vars []corev1.EnvVar, hostname string) []string {
	env := append(append([]string{}, imageEnv...), "HOSTNAME="+hostname)
	for _, v := range vars {
		env = append(env, v.Name+"="+expand(v.Value, envLookup(env)))
	}
	return dedupEnv(env)
}

func envLookup(env []string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, _ := strings.Cut(env[i], "="); k == name {
				return v, true
			}
		}
		return "", false
	}
}

// dedupEnv keeps the last definition of each variable, at the place of its first.
func dedupEnv(env []string) []string {
	idx := map[string]int{}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func containerMounts(in containerSpecInput) ([]specs.Mount, error) {
	bind := func(dst, src string, ro bool) specs.Mount {
		opts := []string{"rbind", "rprivate", "rw"}
		if ro {
			opts[2] = "ro"
		}
		return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}
	}
	mounts := []specs.Mount{
		bind("/etc/hosts", filepath.Join(in.PodDir, "etc-hosts"), false),
		bind("/etc/hostname", filepath.Join(in.PodDir, "hostname"), false),
		bind("/etc/resolv.conf", filepath.Join(in.PodDir, "resolv.conf"), false),
		// POSIX shared memory is shared within the pod like SysV IPC, as with CRI.
		bind("/dev/shm", in.ShmPath, false),
	}
	for _, m := range in.Container.VolumeMounts {
		src, err := in.VolumePath(m.Name)
		if err != nil {
			return nil, fmt.Errorf("container %q of pod %s/%s: volume mount %q: %w", in.Container.Name, in.Pod.Namespace, in.Pod.Name, m.Name, err)
		}
		mounts = append(mounts, bind(m.MountPath, src, m.ReadOnly))
	}
	return mounts, nil
}

func userOpts(pod *corev1.Pod, c *corev1.Container, img ocispec.ImageConfig) []oci.SpecOpts {
	var uid, gid *int64
	if psc := pod.Spec.SecurityContext; psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	var opts []oci.SpecOpts
	switch {
	case uid != nil && gid != nil:
		opts = append(opts, oci.WithUIDGID(uint32(*uid), uint32(*gid)))
	case uid != nil:
		// The primary group comes from the image's /etc/passwd, as with CRI.
		opts = append(opts, oci.WithUserID(uint32(*uid)))
	case img.User != "":
		opts = append(opts, oci.WithUser(img.User))
		if gid != nil {
			opts = append(opts, withGID(uint32(*gid)))
		}
	case gid != nil:
		opts = append(opts, oci.WithUIDGID(0, uint32(*gid)))
	}
	if psc := pod.Spec.SecurityContext; psc != nil && len(psc.SupplementalGroups) > 0 {
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			for _, g := range psc.SupplementalGroups {
				s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, uint32(g))
			}
			return nil
		})
	}
	return opts
}

// withShm replaces the default /dev/shm with the sandbox's, which every container of the pod shares.
func withShm(path string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		mounts := s.Mounts[:0]
		for _, m := range s.Mounts {
			if m.Destination != "/dev/shm" {
				mounts = append(mounts, m)
			}
		}
		s.Mounts = append(mounts, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: path, Options: []string{"rbind", "rprivate", "rw"}})
		return nil
	}
}

func withGID(gid uint32) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.User.GID = gid
		return nil
	}
}

func withResources(c *corev1.Container) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		r := s.Linux.Resources
		cpuReq := c.Resources.Requests.Cpu()
		if cpuReq.IsZero() {
			// A limit without a request requests the limit, as Kubernetes defaults it.
			cpuReq = c.Resources.Limits.Cpu()
		}
		shares := cpuShares(cpuReq.MilliValue())
		r.CPU = &specs.LinuxCPU{Shares: &shares}
		if lim := c.Resources.Limits.Cpu(); !lim.IsZero() {
			quota, period := cpuQuota(lim.MilliValue()), uint64(cfsPeriod)
			r.CPU.Quota, r.CPU.Period = &quota, &period
		}
		if lim := c.Resources.Limits.Memory(); !lim.IsZero() {
			v := lim.Value()
			r.Memory = &specs.LinuxMemory{Limit: &v}
		}
		return nil
	}
}

func withOOMScoreAdj(adj int) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.OOMScoreAdj = &adj
		return nil
	}
}

// withClamp keeps the spec within what this host lets the agent set (see Limits). It must come
// last, after every option that sets an oom_score_adj or rlimit.
func withClamp(l Limits) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, c *containers.Container, s *oci.Spec) error {
		if p := s.Process.OOMScoreAdj; p != nil && *p < l.MinOOMScoreAdj {
			slog.Debug("clamping oom_score_adj to the agent's own", "container", c.ID, "want", *p, "got", l.MinOOMScoreAdj)
			v := l.MinOOMScoreAdj
			s.Process.OOMScoreAdj = &v
		}
		if l.MaxNofile == 0 {
			return nil
		}
		for i := range s.Process.Rlimits {
			rl := &s.Process.Rlimits[i]
			if rl.Hard > l.MaxNofile && rl.Type == "RLIMIT_NOFILE" {
				slog.Debug("clamping RLIMIT_NOFILE to the agent's hard limit", "container", c.ID, "want", rl.Hard, "got", l.MaxNofile)
				rl.Hard = l.MaxNofile
				rl.Soft = min(rl.Soft, l.MaxNofile)
			}
		}
		return nil
	}
}
