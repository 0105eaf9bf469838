// Command pause is the process that holds a pod sandbox's namespaces open,
// a Go port of Kubernetes' build/pause/linux/pause.c. It exits 0 on SIGINT
// or SIGTERM, reaps zombies on SIGCHLD (it is PID 1 when the pod shares a
// PID namespace, so orphans are re-parented to it) and otherwise sleeps.
//
// It is built static (CGO_ENABLED=0) so the image needs no libc, and it
// imports as little as possible so its memory stays small.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

// version is printed by -v; set it with -ldflags '-X main.version=...'.
var version = "1.0"

func main() {
	// Like pause.c, only -v is understood and other arguments are ignored.
	for _, arg := range os.Args[1:] {
		if arg == "-v" {
			os.Stdout.WriteString("pause " + version + "\n")
			return
		}
	}

	// Separate channels so a burst of SIGCHLD cannot crowd out a pending
	// SIGTERM: signal.Notify drops signals when a channel is full.
	down := make(chan os.Signal, 1)
	signal.Notify(down, syscall.SIGINT, syscall.SIGTERM)
	child := make(chan os.Signal, 1)
	signal.Notify(child, syscall.SIGCHLD)

	// A child may have exited before the handler was installed.
	reap()
	for {
		select {
		case <-down:
			os.Exit(0)
		case <-child:
			reap()
		}
	}
}

// reap collects every exited child without blocking. SIGCHLD is not queued,
// so one signal may stand for several children and it loops until none are
// left.
func reap() {
	for {
		pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.ECHILD || pid == 0 {
			return // no children at all, or none has exited yet
		}
		if err != nil {
			os.Stderr.WriteString("pause: wait4: " + err.Error() + "\n")
			return
		}
	}
}
