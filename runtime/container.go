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
	"github.com/containerd/errdefs"
	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/logs"
	"github.com/podagent/podagent/logs/driver"
)

// Labels recording a container's life, so that status survives the agent and the task.
const (
	LabelStartedAt  = "io.podagent.started-at"
	LabelFinishedAt = "io.podagent.finished-at"
	LabelExitCode   = "io.podagent.exit-code"
	// LabelExitReason is set when the reason is not read from the exit code alone (StartError).
	LabelExitReason  = "io.podagent.exit-reason"
	LabelExitMessage = "io.podagent.exit-message"
)

// ReasonStartError is the reason of a container whose process could not start, as containerd's
// CRI reports it; such a container counts as exited with ExitCodeStartError.
const (
	ReasonStartError   = "StartError"
	ExitCodeStartError = 128
)

// taskStartTimeout bounds creating, starting and deleting a task, which the agent does not
// interrupt.
const taskStartTimeout = 2 * time.Minute

// maxMessageLen bounds the message kept in a label (containerd limits a label to 4096 bytes).
const maxMessageLen = 1024

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
	// Reason and Message say why an exited container ended when the exit code alone does not.
	Reason  string
	Message string
	// BackOff is how long to wait after this container exits before starting its next instance.
	BackOff time.Duration
	// Unreaped is an exited container whose task still exists; ReapContainer records its exit
	// and lets its shim go.
	Unreaped bool
}

// ContainerOptions are what a container needs beyond its pod's spec.
type ContainerOptions struct {
	RestartCount int
	// SpecHash identifies the container spec it was made from, so that a changed spec is seen.
	SpecHash string
	// BackOff is recorded with the container, so that a restarted agent keeps the restart back-off.
	BackOff time.Duration
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
		ShimGroup:  r.shimGroup(sb.ID),
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
	if o.BackOff > 0 {
		labels[LabelBackOff] = o.BackOff.String()
	}
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
		SpecHash: o.SpecHash, Image: img.Name(), State: ContainerCreated, BackOff: o.BackOff,
		GracePeriod: time.Duration(gracePeriodSeconds(pod)) * time.Second,
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
	// A task left from a start the agent did not finish (it was stopped in between) is not ours to
	// reuse: its IO may be gone.
	if old, err := c.Task(ctx, nil); err == nil {
		if err := deleteTask(ctx, old); err != nil {
			return fmt.Errorf("remove unfinished task of container %q of pod %s: %w", ctr.Name, ctr.Pod, err)
		}
	}
	now := time.Now().UTC()
	// Creating and starting the task is not cut short by the caller's context (the agent
	// stopping): containerd 1.6 leaves a shim behind when a task's creation is cancelled midway.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), taskStartTimeout)
	defer cancel()
	task, err := c.NewTask(ctx, logDriverIO(r.logDriver, driver.Settings{
		Path: logPath, MaxSize: r.cfg.LogMaxSize, MaxFiles: r.cfg.LogMaxFiles,
	}))
	if err != nil {
		err = fmt.Errorf("create task of container %q of pod %s: %w", ctr.Name, ctr.Pod, err)
		return errors.Join(err, r.startFailed(ctx, c, ctr, err))
	}
	defer func() {
		if retErr != nil {
			_ = deleteTask(context.WithoutCancel(ctx), task)
		}
	}()
	// The start time is recorded once the task exists and before its process starts: a container
	// never runs without one, whenever the agent stops, and an agent killed before the task
	// existed leaves a container that is still only created (no start time, no task), which the
	// next agent starts, instead of one that seems to have started and vanished (exit 255), which
	// it would restart. A start that fails clears it.
	if _, err := c.SetLabels(ctx, map[string]string{LabelStartedAt: now.Format(time.RFC3339Nano)}); err != nil {
		return fmt.Errorf("record start of container %q of pod %s: %w", ctr.Name, ctr.Pod, err)
	}
	if err := task.Start(ctx); err != nil {
		err = fmt.Errorf("start container %q of pod %s: %w", ctr.Name, ctr.Pod, err)
		return errors.Join(err, r.startFailed(ctx, c, ctr, err))
	}
	ctr.State, ctr.PID, ctr.StartedAt = ContainerRunning, task.Pid(), now
	slog.Info("started container", "pod", ctr.Pod.String(), "container", ctr.Name, "id", ctr.ID)
	return nil
}

// startFailed records a failed start. A start cut short because the agent is stopping is not the
// container's failure: its start time is cleared, so that it is started again, as created, later.
func (r *Runtime) startFailed(ctx context.Context, c containerd.Container, ctr *Container, cause error) error {
	if ctx.Err() != nil {
		_, err := c.SetLabels(context.WithoutCancel(ctx), map[string]string{LabelStartedAt: ""})
		return err
	}
	return recordStartError(context.WithoutCancel(ctx), c, ctr, cause)
}

// recordStartError records that ctr's process could not start, as an exit with code 128 and reason
// StartError (containerd CRI's convention), so that the container counts as a failed run: the
// restart policy and back-off apply, and status shows why.
func recordStartError(ctx context.Context, c containerd.Container, ctr *Container, cause error) error {
	msg := cause.Error()
	if len(msg) > maxMessageLen {
		msg = msg[:maxMessageLen]
	}
	now := time.Now().UTC()
	_, err := c.SetLabels(ctx, map[string]string{
		LabelExitCode:    strconv.Itoa(ExitCodeStartError),
		LabelExitReason:  ReasonStartError,
		LabelExitMessage: msg,
		LabelFinishedAt:  now.Format(time.RFC3339Nano),
		LabelStartedAt:   "", // never started; an empty value removes the label
	})
	if err != nil {
		return fmt.Errorf("record start error of container %q of pod %s: %w", ctr.Name, ctr.Pod, err)
	}
	ctr.State, ctr.ExitCode, ctr.Reason, ctr.Message, ctr.FinishedAt = ContainerExited, ExitCodeStartError, ReasonStartError, msg, now
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
	// Not cut short by the caller: a task deletion cancelled midway leaves its shim (containerd 1.6).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), taskStartTimeout)
	defer cancel()
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

// RemoveContainer kills the container if it still runs and deletes it with its snapshot and its
// log file, as CRI's RemoveContainer does.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, err)
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return fmt.Errorf("read labels of container %s: %w", id, err)
	}
	if err := deleteContainer(ctx, c); err != nil {
		return err
	}
	pod := podRefFromLabels(labels)
	if rc, err := restartCountFromLabels(labels); err == nil && pod.Name != "" && labels[LabelContainerName] != "" {
		// A container made but never started shares its restart count, and so its log file,
		// with the instance that replaced it: that log is not this container's to remove.
		if shared, err := r.logShared(ctx, id, pod.UID, labels[LabelContainerName], rc); err != nil || shared {
			return err
		}
		path := logs.Path(r.cfg.LogDir, pod.Namespace, pod.Name, pod.UID, labels[LabelContainerName], rc)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove log of container %s: %w", id, err)
		}
	}
	return nil
}

// logShared reports whether a container other than id is the same instance (pod, name and
// restart count) and so writes the same log file.
func (r *Runtime) logShared(ctx context.Context, id, podUID, name string, restartCount int) (bool, error) {
	ctrs, err := r.PodContainers(ctx, podUID)
	if err != nil {
		return false, err
	}
	for _, c := range ctrs {
		if c.ID != id && c.Name == name && c.RestartCount == restartCount {
			return true, nil
		}
	}
	return false, nil
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
		case v.Projected != nil, v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil:
			// Written by the agent (ProjectedVolumeDir) before the container is made.
			return r.ProjectedVolumeDir(string(pod.UID), name), nil
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
