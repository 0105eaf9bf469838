package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/logs"
)

// Labels recording a container's life, so that status survives the agent and the task.
const (
	LabelStartedAt  = "io.podagent.started-at"
	LabelFinishedAt = "io.podagent.finished-at"
	LabelExitCode   = "io.podagent.exit-code"
)

// ContainerState is where a container is in its life.
type ContainerState string

// Container states, as CRI names them.
const (
	ContainerCreated ContainerState = "created"
	ContainerRunning ContainerState = "running"
	ContainerExited  ContainerState = "exited"
)

// Container is an app container of a pod, as containerd knows it.
type Container struct {
	ID           string
	Name         string
	Pod          PodRef
	SandboxID    string
	RestartCount int
	SpecHash     string
	// GracePeriod is the pod's terminationGracePeriodSeconds when the container was made.
	GracePeriod time.Duration
	Image       string
	State       ContainerState
	PID         uint32
	ExitCode    int
	CreatedAt   time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
}

// ContainerOptions are what a container needs beyond its pod's spec.
type ContainerOptions struct {
	RestartCount int
	// SpecHash identifies the container spec it was made from, so that a changed spec is seen.
	SpecHash string
}

// CreateContainer creates (but does not start) container c of pod in sandbox sb: its own snapshot
// of the image, joined to the sandbox's network, UTS and IPC namespaces.
func (r *Runtime) CreateContainer(ctx context.Context, sb *Sandbox, pod *corev1.Pod, c *corev1.Container, o ContainerOptions) (*Container, error) {
	if !sb.Ready() {
		return nil, fmt.Errorf("container %q of pod %s: sandbox %s is not running", c.Name, sb.Pod, sb.ID)
	}
	img, err := r.localImage(ctx, c.Image)
	if err != nil {
		return nil, fmt.Errorf("container %q of pod %s: %w", c.Name, sb.Pod, err)
	}
	imgCfg, err := imageConfig(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("container %q of pod %s: %w", c.Name, sb.Pod, err)
	}
	opts, err := containerSpecOpts(containerSpecInput{
		Pod: pod, Container: c, Image: imgCfg,
		NetNSPath: sb.NetNSPath, ShmPath: r.shmPath(sb.ID), SandboxPID: sb.PID,
		PodDir:     r.podDir(sb.Pod.UID),
		VolumePath: func(name string) (string, error) { return r.volumePath(pod, name) },
		Limits:     r.limits,
	})
	if err != nil {
		return nil, err
	}
	id := newID()
	labels := sb.Pod.labels(KindContainer)
	labels[LabelContainerName] = c.Name
	labels[LabelSandboxID] = sb.ID
	labels[LabelRestartCount] = strconv.Itoa(o.RestartCount)
	labels[LabelSpecHash] = o.SpecHash
	labels[LabelGracePeriod] = strconv.FormatInt(gracePeriodSeconds(pod), 10)
	_, err = r.client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithSnapshotter(r.cfg.Snapshotter),
		containerd.WithNewSnapshot(id, img),
		containerd.WithContainerLabels(labels),
		containerd.WithNewSpec(opts...),
	)
	if err != nil {
		return nil, fmt.Errorf("create container %q of pod %s: %w", c.Name, sb.Pod, err)
	}
	return &Container{
		ID: id, Name: c.Name, Pod: sb.Pod, SandboxID: sb.ID, RestartCount: o.RestartCount,
		SpecHash: o.SpecHash, Image: img.Name(), State: ContainerCreated,
	}, nil
}

// StartContainer starts a created container. A process that cannot start (a command that is not
// in the image, say) fails here, with runc's reason.
func (r *Runtime) StartContainer(ctx context.Context, ctr *Container) (retErr error) {
	c, err := r.client.LoadContainer(ctx, ctr.ID)
	if err != nil {
		return fmt.Errorf("load container %q of pod %s: %w", ctr.Name, ctr.Pod, err)
	}
	logPath := logs.Path(r.cfg.LogDir, ctr.Pod.Namespace, ctr.Pod.Name, ctr.Pod.UID, ctr.Name, ctr.RestartCount)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return fmt.Errorf("create log directory of container %q of pod %s: %w", ctr.Name, ctr.Pod, err)
	}
	task, err := c.NewTask(ctx, cio.LogFile(logPath))
	if err != nil {
		return fmt.Errorf("create task of container %q of pod %s: %w", ctr.Name, ctr.Pod, err)
	}
	defer func() {
		if retErr != nil {
			_ = deleteTask(context.WithoutCancel(ctx), task)
		}
	}()
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start container %q of pod %s: %w", ctr.Name, ctr.Pod, err)
	}
	now := time.Now().UTC()
	if _, err := c.SetLabels(ctx, map[string]string{LabelStartedAt: now.Format(time.RFC3339Nano)}); err != nil {
		return fmt.Errorf("record start of container %q of pod %s: %w", ctr.Name, ctr.Pod, err)
	}
	ctr.State, ctr.PID, ctr.StartedAt = ContainerRunning, task.Pid(), now
	slog.Info("started container", "pod", ctr.Pod.String(), "container", ctr.Name, "id", ctr.ID)
	return nil
}

// StopContainer sends SIGTERM, waits up to grace, then SIGKILL, and records how the process
// ended. The exited task is deleted, so that no shim lingers for a container that does not run;
// its exit code and time stay in the container's labels.
func (r *Runtime) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load task of container %s: %w", id, err)
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait for container %s: %w", id, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("status of container %s: %w", id, err)
	}
	if st.Status == containerd.Running || st.Status == containerd.Paused {
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("send SIGTERM to container %s: %w", id, err)
		}
		select {
		case <-exitc:
		case <-time.After(grace):
			if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("send SIGKILL to container %s: %w", id, err)
			}
			select {
			case <-exitc:
			case <-ctx.Done():
				return fmt.Errorf("wait for container %s to die: %w", id, ctx.Err())
			}
		case <-ctx.Done():
			return fmt.Errorf("wait for container %s to stop: %w", id, ctx.Err())
		}
	}
	return r.reapTask(ctx, c, task)
}

// reapTask records an exited task's exit code and time in the container's labels and deletes it.
func (r *Runtime) reapTask(ctx context.Context, c containerd.Container, task containerd.Task) error {
	st, err := task.Delete(ctx)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task of container %s: %w", c.ID(), err)
	}
	if st == nil {
		return nil
	}
	_, err = c.SetLabels(ctx, map[string]string{
		LabelExitCode:   strconv.Itoa(int(st.ExitCode())),
		LabelFinishedAt: st.ExitTime().UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return fmt.Errorf("record exit of container %s: %w", c.ID(), err)
	}
	return nil
}

// RemoveContainer kills the container if it still runs and deletes it with its snapshot.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, err)
	}
	return deleteContainer(ctx, c)
}

// volumePath is the host path behind the pod volume named name.
func (r *Runtime) volumePath(pod *corev1.Pod, name string) (string, error) {
	for _, v := range pod.Spec.Volumes {
		if v.Name != name {
			continue
		}
		switch {
		case v.EmptyDir != nil:
			return r.emptyDirPath(string(pod.UID), name), nil
		case v.HostPath != nil:
			return hostPathVolume(v.HostPath)
		}
		return "", fmt.Errorf("volume %q has no supported source", name)
	}
	return "", fmt.Errorf("no volume named %q in the pod", name)
}

// hostPathVolume checks (and for the *OrCreate types, creates) a hostPath volume's path.
func hostPathVolume(hp *corev1.HostPathVolumeSource) (string, error) {
	t := corev1.HostPathUnset
	if hp.Type != nil {
		t = *hp.Type
	}
	fi, err := os.Stat(hp.Path)
	switch {
	case errors.Is(err, os.ErrNotExist) && t == corev1.HostPathDirectoryOrCreate:
		return hp.Path, os.MkdirAll(hp.Path, 0o755)
	case errors.Is(err, os.ErrNotExist) && t == corev1.HostPathFileOrCreate:
		if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
			return "", err
		}
		f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_RDONLY, 0o644)
		if err != nil {
			return "", err
		}
		return hp.Path, f.Close()
	case err != nil && t != corev1.HostPathUnset:
		return "", fmt.Errorf("hostPath %s: %w", hp.Path, err)
	case t == corev1.HostPathDirectory && !fi.IsDir():
		return "", fmt.Errorf("hostPath %s is not a directory", hp.Path)
	case t == corev1.HostPathFile && !fi.Mode().IsRegular():
		return "", fmt.Errorf("hostPath %s is not a file", hp.Path)
	}
	return hp.Path, nil
}

// DefaultGracePeriod is Kubernetes' default terminationGracePeriodSeconds.
const DefaultGracePeriod = 30 * time.Second

func gracePeriodSeconds(pod *corev1.Pod) int64 {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return *g
	}
	return int64(DefaultGracePeriod / time.Second)
}
