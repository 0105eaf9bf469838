package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/netns"
)

// Sandbox is a pod's pause container and network namespace.
type Sandbox struct {
	ID        string
	Pod       PodRef
	NetNSPath string
	IPs       []string
	// PID is the pause process, 0 when it is not running.
	PID       uint32
	CreatedAt time.Time
	// SpecHash identifies the pod-level spec the sandbox was made for (see SandboxHash).
	SpecHash string
}

// Ready reports whether the pause process runs, so that containers can join its namespaces.
func (s *Sandbox) Ready() bool { return s.PID != 0 }

// RunSandbox makes the pod's sandbox, in containerd's CRI order: record the pause container (so a
// crash at any later point leaves something a restarted agent finds by label), create the network
// namespace, CNI ADD, write the pod's files, then start pause. Every step is undone if a later one
// fails.
func (r *Runtime) RunSandbox(ctx context.Context, pod *corev1.Pod) (_ *Sandbox, retErr error) {
	ref := PodRef{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}
	var undo undoStack
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, undo.run(ctx))
		}
	}()

	img, err := r.localImage(ctx, r.cfg.PauseImage)
	if err != nil {
		return nil, fmt.Errorf("sandbox of pod %s: %w", ref, err)
	}
	imgCfg, err := imageConfig(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("sandbox of pod %s: %w", ref, err)
	}
	id := newID()
	sb := &Sandbox{ID: id, Pod: ref, NetNSPath: r.net.Path(id), SpecHash: SandboxHash(pod)}
	opts, err := sandboxSpecOpts(sandboxSpecInput{Pod: pod, Image: imgCfg, NetNSPath: sb.NetNSPath, ShmPath: r.shmPath(id), Limits: r.limits, ShimGroup: r.shimGroup(id)})
	if err != nil {
		return nil, err
	}
	labels := ref.labels(KindSandbox)
	labels[LabelSandboxHash] = sb.SpecHash
	ctr, err := r.client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithSnapshotter(r.cfg.Snapshotter),
		// Writable, as CRI does: runc must be able to create /proc, /dev and /sys in an image
		// that lacks them; the spec still mounts the root filesystem read-only.
		containerd.WithNewSnapshot(id, img),
		containerd.WithContainerLabels(labels),
		containerd.WithNewSpec(opts...),
	)
	if err != nil {
		return nil, fmt.Errorf("create sandbox container of pod %s: %w", ref, err)
	}
	undo.push(func(ctx context.Context) error { return deleteContainer(ctx, ctr) })

	if err := mountShm(r.shmPath(id)); err != nil {
		return nil, fmt.Errorf("sandbox of pod %s: %w", ref, err)
	}
	undo.push(func(context.Context) error { return r.removeSandboxDir(id) })

	att, err := r.net.Setup(ctx, id, podNetwork(pod))
	if err != nil {
		return nil, fmt.Errorf("set up network of pod %s: %w", ref, err)
	}
	undo.push(func(ctx context.Context) error { return r.net.Teardown(ctx, id, podNetwork(pod)) })
	for _, ip := range att.IPs {
		sb.IPs = append(sb.IPs, ip.String())
	}
	labels[LabelPodIP] = strings.Join(sb.IPs, ",")
	if _, err := ctr.SetLabels(ctx, labels); err != nil {
		return nil, fmt.Errorf("record IP of pod %s: %w", ref, err)
	}
	// The pod's directory outlives a sandbox (volumes keep their data when the sandbox is
	// remade), so only a directory this call made is removed on failure.
	if _, err := os.Stat(r.podDir(ref.UID)); errors.Is(err, os.ErrNotExist) {
		undo.push(func(context.Context) error { return r.removePodFiles(ref.UID) })
	}
	if err := r.writePodFiles(pod, sb.IPs); err != nil {
		return nil, err
	}

	// Not cut short by the caller's context: see StartContainer.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), taskStartTimeout)
	defer cancel()
	task, err := ctr.NewTask(tctx, cio.NullIO)
	if err != nil {
		return nil, fmt.Errorf("create pause task of pod %s: %w", ref, err)
	}
	undo.push(func(ctx context.Context) error { return deleteTask(ctx, task) })
	if err := task.Start(tctx); err != nil {
		return nil, fmt.Errorf("start pause process of pod %s: %w", ref, err)
	}
	sb.PID = task.Pid()
	info, err := ctr.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err == nil {
		sb.CreatedAt = info.CreatedAt
	}
	slog.Info("started sandbox", "pod", ref.String(), "sandbox", id, "ip", labels[LabelPodIP])
	return sb, nil
}

// RemoveSandbox kills the pause process, tears the network down (CNI DEL always runs, even when
// the namespace is already gone) and deletes the container and its snapshot. It is idempotent.
func (r *Runtime) RemoveSandbox(ctx context.Context, id string) error {
	ctr, err := r.client.LoadContainer(ctx, id)
	var pod PodRef
	switch {
	case errdefs.IsNotFound(err):
		ctr = nil
	case err != nil:
		return fmt.Errorf("load sandbox %s: %w", id, err)
	default:
		labels, err := ctr.Labels(ctx)
		if err != nil {
			return fmt.Errorf("read labels of sandbox %s: %w", id, err)
		}
		pod = podRefFromLabels(labels)
		if task, err := ctr.Task(ctx, nil); err == nil {
			if err := deleteTask(ctx, task); err != nil {
				return fmt.Errorf("stop pause process of pod %s: %w", pod, err)
			}
		} else if !errdefs.IsNotFound(err) {
			return fmt.Errorf("load pause task of pod %s: %w", pod, err)
		}
	}
	if err := r.net.Teardown(ctx, id, netns.Pod{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}); err != nil {
		return err
	}
	if err := r.removeSandboxDir(id); err != nil {
		return fmt.Errorf("sandbox of pod %s: %w", pod, err)
	}
	if ctr != nil {
		if err := deleteContainer(ctx, ctr); err != nil {
			return fmt.Errorf("delete sandbox container of pod %s: %w", pod, err)
		}
	}
	slog.Info("removed sandbox", "pod", pod.String(), "sandbox", id)
	return nil
}

// shimGroup is the shim group of the tasks of sandbox id: the sandbox itself.
func (r *Runtime) shimGroup(sandboxID string) string {
	if r.shimPerContainer {
		return ""
	}
	return sandboxID
}

// podNetwork is what CNI is told about pod: its identity and its hostPorts.
func podNetwork(pod *corev1.Pod) netns.Pod {
	p := netns.Pod{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}
	for _, c := range pod.Spec.Containers {
		for _, port := range c.Ports {
			if port.HostPort == 0 {
				continue
			}
			proto := strings.ToLower(string(port.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			p.PortMappings = append(p.PortMappings, netns.PortMapping{
				HostPort: port.HostPort, ContainerPort: port.ContainerPort, Protocol: proto, HostIP: port.HostIP,
			})
		}
	}
	return p
}

// deleteTask kills a task's processes and deletes it; a task already gone is not an error.
func deleteTask(ctx context.Context, task containerd.Task) error {
	// Not cut short by the caller: a task deletion cancelled midway leaves its shim (containerd 1.6).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), taskStartTimeout)
	defer cancel()
	_, err := task.Delete(ctx, containerd.WithProcessKill)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task %s: %w", task.ID(), err)
	}
	return nil
}

// deleteContainer deletes a container, its task if any, and its snapshot.
func deleteContainer(ctx context.Context, ctr containerd.Container) error {
	if task, err := ctr.Task(ctx, nil); err == nil {
		if err := deleteTask(ctx, task); err != nil {
			return err
		}
	}
	err := ctr.Delete(ctx, containerd.WithSnapshotCleanup)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", ctr.ID(), err)
	}
	return nil
}

// shmSize is the pod's /dev/shm size, containerd CRI's default (64Mi).
const shmSize = 64 << 20

func (r *Runtime) sandboxDir(id string) string { return filepath.Join(r.cfg.RunDir, "sandboxes", id) }

func (r *Runtime) shmPath(id string) string { return filepath.Join(r.sandboxDir(id), "shm") }

// mountShm mounts the tmpfs that serves as /dev/shm for every container of a sandbox.
func mountShm(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("create shm directory %s: %w", path, err)
	}
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=1777,size=%d", shmSize)); err != nil {
		return fmt.Errorf("mount shm at %s: %w", path, err)
	}
	return nil
}

// removeSandboxDir unmounts the sandbox's /dev/shm and removes its run directory; idempotent.
func (r *Runtime) removeSandboxDir(id string) error {
	path := r.shmPath(id)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount shm %s: %w", path, err)
	}
	if err := os.RemoveAll(r.sandboxDir(id)); err != nil {
		return fmt.Errorf("remove sandbox directory %s: %w", r.sandboxDir(id), err)
	}
	return nil
}
