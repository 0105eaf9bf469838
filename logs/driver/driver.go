// Package driver is podagent's container log driver: a process that containerd's shim starts for
// each container (a `binary://` log URI, as nerdctl does), that reads the container's stdout and
// stderr pipes and writes them to the container's log file in the CRI format, with rotation.
//
// The shim owns it, not the agent: the agent can stop, crash or be upgraded while containers run,
// and no line is lost and no container blocks on a full pipe.
package driver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/runtime/v2/logging"
	"github.com/containerd/containerd/v2/pkg/cio"

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

// Creator is the containerd IO of a container whose output the driver at binary writes.
func Creator(binary string, s Settings) cio.Creator {
	return cio.BinaryIO(binary, map[string]string{
		Marker:        "1",
		"--path":      s.Path,
		"--max-size":  strconv.FormatInt(s.MaxSize, 10),
		"--max-files": strconv.Itoa(s.MaxFiles),
	})
}

// Invoked reports whether args (os.Args) are those of the shim starting a log driver.
func Invoked(args []string) bool {
	return slices.Contains(args, Marker)
}

// Main runs the log driver with args (os.Args) and exits: 0 once both streams have ended and
// every line is written, 1 if the log could not be written.
func Main(args []string) {
	s, err := parse(args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "podagent log driver:", err)
		os.Exit(2)
	}
	logging.Run(func(_ context.Context, cfg *logging.Config, ready func() error) error {
		// The context ends on SIGTERM; the streams are read to their end regardless, so that a
		// line the container wrote is never dropped.
		return run(cfg, ready, s)
	})
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

func run(cfg *logging.Config, ready func() error, s Settings) error {
	w, err := logs.NewWriter(s.Path, s.MaxSize, s.MaxFiles)
	if err != nil {
		// Tell the shim we are done setting up all the same: failing here would fail the
		// container's start, and a container must not fail for its log.
		_ = ready()
		drain(cfg)
		return fmt.Errorf("open log of container %s: %w", cfg.ID, err)
	}
	if err := ready(); err != nil {
		w.Close()
		return fmt.Errorf("signal the shim for container %s: %w", cfg.ID, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = logs.CopyStream(w, "stdout", cfg.Stdout, time.Now) })
	wg.Go(func() { errs[1] = logs.CopyStream(w, "stderr", cfg.Stderr, time.Now) })
	wg.Wait()
	return errors.Join(errs[0], errs[1], w.Close())
}

// drain reads both streams to their end, so the container never blocks on a full pipe.
func drain(cfg *logging.Config) {
	var wg sync.WaitGroup
	for _, r := range []interface{ Read([]byte) (int, error) }{cfg.Stdout, cfg.Stderr} {
		wg.Go(func() {
			buf := make([]byte, 32<<10)
			for {
				if _, err := r.Read(buf); err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
}
