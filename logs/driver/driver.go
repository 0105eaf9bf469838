// Package driver is podagent's container log driver: a process that containerd's shim starts for
// each container (a `binary://` log URI, as nerdctl does), that reads the container's stdout and
// stderr pipes and writes them to the container's log file in the CRI format, with rotation.
//
// The shim owns it, not the agent: the agent can stop, crash or be upgraded while containers run,
// and no line is lost and no container blocks on a full pipe.
//
// One driver runs per container, so what it costs is paid per container: the package links only
// the standard library and package logs (no containerd client, no Kubernetes types), and speaks
// the shim's protocol itself, so that cmd/podagent-logger stays a process of about 2 MiB.
package driver

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/podagent/podagent/logs"
)

// Marker is the argument that tells a podagent binary (or a test binary) that the shim started it
// as a log driver. The shim passes the URI's query as "key value" argument pairs in no fixed
// order, so the marker is found anywhere in the arguments, not as a subcommand.
const Marker = "--podagent-log-driver"

// Settings are what the driver needs to know about one container's log.
type Settings struct {
	// Path is the container instance's log file.
	Path     string
	MaxSize  int64
	MaxFiles int
}

// Args are the URI query arguments that start the driver with s (see Marker).
func (s Settings) Args() map[string]string {
	return map[string]string{
		Marker:        "1",
		"--path":      s.Path,
		"--max-size":  strconv.FormatInt(s.MaxSize, 10),
		"--max-files": strconv.Itoa(s.MaxFiles),
	}
}

// Invoked reports whether args (os.Args) are those of the shim starting a log driver.
func Invoked(args []string) bool {
	return slices.Contains(args, Marker)
}

// The shim's side of a `binary://` log URI (containerd's runtime/v2/logging): the container's
// stdout and stderr pipes are descriptors 3 and 4, and the driver writes a byte to descriptor 5
// and closes it once it is ready for the container to start.
const (
	fdStdout = 3
	fdStderr = 4
	fdReady  = 5
)

// Main runs the log driver with args (os.Args) and exits: 0 once both streams have ended and
// every line is written, 1 if the log could not be written.
func Main(args []string) {
	s, err := parse(args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "podagent log driver:", err)
		os.Exit(2)
	}
	// The driver's garbage is its few read and record buffers: collecting often keeps its heap,
	// and so the memory each container costs, small.
	debug.SetGCPercent(25)
	// SIGTERM (the shim stopping us) is ignored: the streams are read to their end regardless, so
	// that a line the container wrote is never dropped; the shim closes them when the task goes.
	signal.Ignore(syscall.SIGTERM)
	stdout, stderr := os.NewFile(fdStdout, "CONTAINER_STDOUT"), os.NewFile(fdStderr, "CONTAINER_STDERR")
	ready := func() error {
		w := os.NewFile(fdReady, "CONTAINER_WAIT")
		if _, err := w.Write([]byte{0}); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	}
	if err := run(os.Getenv("CONTAINER_ID"), stdout, stderr, ready, s); err != nil {
		fmt.Fprintln(os.Stderr, "podagent log driver:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func parse(args []string) (Settings, error) {
	fs := flag.NewFlagSet("log-driver", flag.ContinueOnError)
	fs.String(Marker[2:], "", "")
	var s Settings
	fs.StringVar(&s.Path, "path", "", "")
	fs.Int64Var(&s.MaxSize, "max-size", logs.DefaultMaxSize, "")
	fs.IntVar(&s.MaxFiles, "max-files", logs.DefaultMaxFiles, "")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if s.Path == "" {
		return s, errors.New("no --path")
	}
	return s, nil
}

func run(id string, stdout, stderr io.Reader, ready func() error, s Settings) error {
	w, err := logs.NewWriter(s.Path, s.MaxSize, s.MaxFiles)
	if err != nil {
		// Tell the shim we are done setting up all the same: failing here would fail the
		// container's start, and a container must not fail for its log.
		_ = ready()
		drain(stdout, stderr)
		return fmt.Errorf("open log of container %s: %w", id, err)
	}
	if err := ready(); err != nil {
		w.Close()
		return fmt.Errorf("signal the shim for container %s: %w", id, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = logs.CopyStream(w, logs.Stdout, stdout, time.Now) })
	wg.Go(func() { errs[1] = logs.CopyStream(w, logs.Stderr, stderr, time.Now) })
	wg.Wait()
	return errors.Join(errs[0], errs[1], w.Close())
}

// drain reads both streams to their end, so the container never blocks on a full pipe.
func drain(rs ...io.Reader) {
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() { _, _ = io.Copy(io.Discard, r) })
	}
	wg.Wait()
}
