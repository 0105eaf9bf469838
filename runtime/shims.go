package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"golang.org/x/sys/unix"
)

// ReapOrphanShims stops the shims in the runtime's containerd namespace that serve no task.
//
// containerd 1.6 leaves such a shim behind when the client that asked for a task goes away in the
// middle of creating it (the agent killed with SIGKILL): containerd's own cleanup runs with the
// request's context, which is gone, and the task is never recorded. The shim then lives until
// containerd restarts. Call this only when no task of the namespace is being created (at agent
// start), since a task being created has a shim and no task yet.
func (r *Runtime) ReapOrphanShims(ctx context.Context, containerdStateDir string) error {
	ns := r.cfg.Namespace
	bundles := filepath.Join(containerdStateDir, "io.containerd.runtime.v2.task", ns)
	// A shim is found by its bundle directory or, if that is gone already, by its process.
	shims := shimPIDs(ns)
	entries, err := os.ReadDir(bundles)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("list task bundles: %w", err)
	}
	for _, e := range entries {
		if _, ok := shims[e.Name()]; !ok {
			shims[e.Name()] = nil
		}
	}
	grouped, err := r.liveShimGroups(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for id, pids := range shims {
		_, err := r.client.TaskService().Get(ctx, &tasks.GetRequest{ContainerID: id})
		err = errgrpc.ToNative(err) // the raw service speaks gRPC status codes
		if err == nil || !errdefs.IsNotFound(err) {
			continue // a live task, or containerd cannot tell: leave it
		}
		if grouped[id] {
			// A pod's shim is named after the task that started it, the pause: it still serves
			// the pod's app containers when the pause task is gone.
			continue
		}
		dir := filepath.Join(bundles, id)
		if mounted(dir) {
			continue // its container process may still hold its root filesystem
		}
		for _, pid := range pids {
			slog.Warn("stopping a shim that serves no task (left by a killed agent)", "container", id, "pid", pid)
			if err := unix.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("stop orphan shim %d of %s: %w", pid, id, err))
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove orphan task bundle %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// liveShimGroups are the shim groups (sandbox IDs) that some app container's live task is in.
func (r *Runtime) liveShimGroups(ctx context.Context) (map[string]bool, error) {
	resp, err := r.client.TaskService().List(ctx, &tasks.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", errgrpc.ToNative(err))
	}
	live := map[string]bool{}
	for _, t := range resp.Tasks {
		live[t.ID] = true
	}
	ctrs, err := r.client.ContainerService().List(ctx, fmt.Sprintf("labels.%q==%s", LabelKind, KindContainer))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	groups := map[string]bool{}
	for _, c := range ctrs {
		if live[c.ID] {
			groups[c.Labels[LabelSandboxID]] = true
		}
	}
	return groups, nil
}

// shimPIDs finds the shim processes of namespace ns by command line, by container ID.
func shimPIDs(ns string) map[string][]int {
	procs, _ := os.ReadDir("/proc")
	out := map[string][]int{}
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
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		if argValue(args, "-namespace") == ns {
			if id := argValue(args, "-id"); id != "" {
				out[id] = append(out[id], pid)
			}
		}
	}
	return out
}

func argValue(args []string, flag string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}

// mounted reports whether anything is mounted at or under dir.
func mounted(dir string) bool {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return true // cannot tell: assume so
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			return true
		}
	}
	return false
}

// ReleaseLeases deletes the leases in the runtime's containerd namespace. A lease protects what a
// client is in the middle of making (a container's snapshot before its record exists, a pull's
// content); a client killed in the middle leaves it, and containerd keeps what it protects for a
// day. Call it only when nothing of the namespace is being made (at agent start): what a lease
// held and nothing else refers to is then garbage-collected.
func (r *Runtime) ReleaseLeases(ctx context.Context) error {
	ls, err := r.client.LeasesService().List(ctx)
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	var errs []error
	for _, l := range ls {
		if err := r.client.LeasesService().Delete(ctx, l); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete lease %s: %w", l.ID, err))
		}
	}
	if len(ls) > 0 {
		slog.Info("released leases left by an earlier agent", "count", len(ls))
	}
	return errors.Join(errs...)
}
