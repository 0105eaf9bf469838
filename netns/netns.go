// Package netns owns pod network namespaces: it creates them as bind-mounted files the agent
// controls, and attaches them to the pod network with CNI.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Create makes a new network namespace and bind-mounts it at path, so that it outlives every
// process in it and can be handed to runc and to CNI by path.
//
// The namespace is created on a locked OS thread that is never unlocked: when the goroutine ends,
// Go terminates that thread, so no other goroutine can ever run in the wrong network namespace
// even if switching back fails.
func Create(path string) (retErr error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create network namespace directory for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create network namespace mount point %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close network namespace mount point %s: %w", path, err)
	}
	defer func() {
		if retErr != nil {
			_ = os.Remove(path)
		}
	}()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: see the doc comment.
		errc <- func() error {
			orig, err := netns.Get()
			if err != nil {
				return fmt.Errorf("get current network namespace: %w", err)
			}
			defer orig.Close()
			created, err := netns.New()
			if err != nil {
				return fmt.Errorf("unshare network namespace: %w", err)
			}
			defer created.Close()
			src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
			if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind-mount network namespace to %s: %w", path, err)
			}
			return netns.Set(orig)
		}()
	}()
	return <-errc
}

// Remove unmounts and removes the network namespace at path. A path that is absent or no longer
// mounted is not an error: removal must be idempotent so that cleanup can be retried after a crash.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", path, err)
	}
	return nil
}

// IsMounted reports whether path holds a mounted network namespace.
func IsMounted(path string) bool {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return false
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h), &st); err != nil {
		return false
	}
	// An nsfs inode lives on the nsfs device; a plain file left behind after a failed
	// mount does not, and must not be mistaken for a namespace.
	var fs unix.Statfs_t
	return unix.Fstatfs(int(h), &fs) == nil && fs.Type == unix.NSFS_MAGIC
}
