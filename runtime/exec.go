package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// ExecOptions describe a command to run in a container.
type ExecOptions struct {
	Cmd            []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	TTY            bool
	// Resize carries the client's terminal size changes (with TTY); it may be nil.
	Resize <-chan TerminalSize
}

// TerminalSize is a terminal's width and height in characters.
type TerminalSize struct {
	Width, Height uint16
}

// Exec runs a command in a running container, with the container's environment, user and working
// directory, and returns its exit code.
func (r *Runtime) Exec(ctx context.Context, containerID string, o ExecOptions) (int, error) {
	c, err := r.client.LoadContainer(ctx, containerID)
	if err != nil {
		return 0, fmt.Errorf("load container %s: %w", containerID, err)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return 0, fmt.Errorf("spec of container %s: %w", containerID, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("container %s is not running: %w", containerID, err)
	}
	pspec := *spec.Process
	pspec.Args = o.Cmd
	pspec.Terminal = o.TTY
	var stdin *eofNotifier
	var in io.Reader
	if o.Stdin != nil {
		stdin = &eofNotifier{r: o.Stdin, done: make(chan struct{})}
		in = stdin
	}
	ioOpts := []cio.Opt{cio.WithStreams(in, o.Stdout, o.Stderr)}
	if o.TTY {
		ioOpts = append(ioOpts, cio.WithTerminal)
	}
	execID := "exec-" + newID()[:16]
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(ioOpts...))
	if err != nil {
		return 0, fmt.Errorf("exec %q in container %s: %w", o.Cmd, containerID, err)
	}
	// The wait outlives the request: a process still running when the request ends is killed, and
	// waited for, before it is deleted.
	wctx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	exitc, err := proc.Wait(wctx)
	if err != nil {
		_ = deleteExec(ctx, proc, nil)
		return 0, fmt.Errorf("wait for exec %q in container %s: %w", o.Cmd, containerID, err)
	}
	defer func() {
		if err := deleteExec(ctx, proc, exitc); err != nil {
			slog.Warn("delete exec", "container", containerID, "exec", execID, "err", err)
		}
	}()
	if err := proc.Start(ctx); err != nil {
		return 0, fmt.Errorf("start exec %q in container %s: %w", o.Cmd, containerID, err)
	}
	finished := make(chan struct{})
	defer close(finished)
	if o.TTY && o.Resize != nil {
		go resizeTerminal(ctx, proc, o.Resize)
	}
	if stdin != nil {
		// The command sees EOF on stdin once the caller's reader is drained and copied.
		go func() {
			select {
			case <-stdin.done:
				_ = proc.CloseIO(context.WithoutCancel(ctx), containerd.WithStdinCloser)
			case <-finished:
			}
		}()
	}
	select {
	case st := <-exitc:
		proc.IO().Wait()
		code, _, err := st.Result()
		if err != nil {
			return 0, fmt.Errorf("exec %q in container %s: %w", o.Cmd, containerID, err)
		}
		return int(code), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("exec %q in container %s: %w", o.Cmd, containerID, ctx.Err())
	}
}

// execCleanupTimeout bounds killing and deleting an exec'd process.
const execCleanupTimeout = 10 * time.Second

// deleteExec ends an exec'd process and releases it. A process that still runs (its request ended:
// kubectl interrupted, the connection lost, even while it was being started) is killed and waited
// for through exitc, as containerd's CRI kills an exec whose request ended: otherwise it would run
// on, unseen, in the container. containerd closes the process's IO (the FIFOs the agent holds open,
// their directory) only when it deletes the process; when the process went with its task (the
// container was removed meanwhile, as when its pod is deleted), the IO is closed here, or it would
// stay open in the agent for good.
func deleteExec(ctx context.Context, proc containerd.Process, exitc <-chan containerd.ExitStatus) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execCleanupTimeout)
	defer cancel()
	var errs []error
	if st, err := proc.Status(ctx); err == nil && (st.Status == containerd.Running || st.Status == containerd.Paused) {
		if err := proc.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("kill exec %s: %w", proc.ID(), err))
		} else if exitc != nil {
			select {
			case <-exitc:
			case <-ctx.Done():
			}
		}
	}
	if _, err := proc.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete exec %s: %w", proc.ID(), err))
	}
	if pio := proc.IO(); pio != nil {
		pio.Cancel()
		_ = pio.Close()
	}
	return errors.Join(errs...)
}

// resizeTerminal applies each size from sizes to proc's terminal until sizes closes or ctx ends.
// A failed resize (the process has exited meanwhile) only ends the loop's usefulness, not the exec.
func resizeTerminal(ctx context.Context, proc containerd.Process, sizes <-chan TerminalSize) {
	for {
		select {
		case <-ctx.Done():
			return
		case size, ok := <-sizes:
			if !ok {
				return
			}
			if size.Width == 0 || size.Height == 0 {
				continue
			}
			if err := proc.Resize(ctx, uint32(size.Width), uint32(size.Height)); err != nil {
				slog.Debug("resize exec terminal", "exec", proc.ID(), "err", err)
			}
		}
	}
}

// eofNotifier closes done when its reader is exhausted. It reports EOF only on a read that
// returns no data, so that everything read before has been written on by io.Copy by then.
type eofNotifier struct {
	r    io.Reader
	once sync.Once
	done chan struct{}
}

func (e *eofNotifier) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && n > 0 {
		return n, nil
	}
	if err != nil {
		e.once.Do(func() { close(e.done) })
	}
	return n, err
}
