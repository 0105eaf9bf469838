package runtime

import (
	"context"
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

// execKillTimeout bounds the wait for an abandoned exec to die once killed.
const execKillTimeout = 10 * time.Second

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
	defer proc.Delete(context.WithoutCancel(ctx))
	exitc, err := proc.Wait(ctx)
	if err != nil {
		return 0, fmt.Errorf("wait for exec %q in container %s: %w", o.Cmd, containerID, err)
	}
	// Not cut short by the caller: a start cancelled after the process began (the client went
	// away as its first output arrived) would leave it running with nobody to kill it.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), taskStartTimeout)
	defer cancel()
	if err := proc.Start(sctx); err != nil {
		return 0, fmt.Errorf("start exec %q in container %s: %w", o.Cmd, containerID, err)
	}
	if o.TTY && o.Resize != nil {
		go resizeTerminal(ctx, proc, o.Resize)
	}
	if stdin != nil {
		// The command sees EOF on stdin once the caller's reader is drained and copied.
		go func() {
			select {
			case <-stdin.done:
				_ = proc.CloseIO(context.WithoutCancel(ctx), containerd.WithStdinCloser)
			case <-ctx.Done():
			}
		}()
	}
	select {
	case st := <-exitc:
		if ctx.Err() == nil {
			proc.IO().Wait()
			code, _, err := st.Result()
			if err != nil {
				return 0, fmt.Errorf("exec %q in container %s: %w", o.Cmd, containerID, err)
			}
			return int(code), nil
		}
		// The wait ended with ctx: the command may still run.
	case <-ctx.Done():
	}
	killAbandoned(ctx, proc, containerID)
	return 0, fmt.Errorf("exec %q in container %s: %w", o.Cmd, containerID, ctx.Err())
}

// killAbandoned kills an exec'd process that nobody waits for any more (the client went away),
// as containerd's CRI does, rather than leave it running unattached, and waits for it to end so
// that it can be deleted.
func killAbandoned(ctx context.Context, proc containerd.Process, containerID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execKillTimeout)
	defer cancel()
	exited, err := proc.Wait(ctx)
	if err != nil {
		slog.Warn("wait for abandoned exec", "container", containerID, "exec", proc.ID(), "err", err)
		return
	}
	if err := proc.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		slog.Warn("kill abandoned exec", "container", containerID, "exec", proc.ID(), "err", err)
		return
	}
	select {
	case <-exited:
	case <-ctx.Done():
	}
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
