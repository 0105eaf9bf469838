// Command podagent is a kubelet-like node agent that runs Kubernetes pods on containerd.
//
//	podagent serve [flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	clog "github.com/containerd/log"
	"k8s.io/klog/v2"

	"github.com/podagent/podagent/logs/driver"
	"github.com/podagent/podagent/serve"
)

func main() {
	if driver.Invoked(os.Args) {
		driver.Main(os.Args) // started by a shim for a container's output; never returns
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = runServe(os.Args[2:])
	case "mirror":
		err = serveMirror(os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "podagent: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "podagent: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  podagent serve [flags]    run the node agent (podagent serve -h lists the flags)
  podagent mirror [flags]   serve image archives as a read-only registry, for hosts without one`)
}

// runServe runs `podagent serve`; the settings and where they come from are in config.go.
func runServe(args []string) error {
	s, help, err := parseServeArgs(args)
	if help || err != nil {
		return err
	}
	if err := setupLogs(s.LogLevel, s.LogFormat); err != nil {
		return err
	}
	cfg := s.Agent

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := serve.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	if cp := n.ControlPlane; cp != nil {
		l := cp.Listener()
		if s.LogFormat == logFormatJSON {
			// Every line of a JSON log is a JSON object, for the shipper that reads it.
			slog.Info("serving the Kubernetes API", "url", "https://"+l.Addr, "kubeconfig", l.Kubeconfig)
		} else {
			fmt.Fprintf(os.Stderr, "podagent: the Kubernetes API is at https://%s; point kubectl at it with:\n\n    export KUBECONFIG=%s\n\n", l.Addr, l.Kubeconfig)
		}
	}
	return n.Run(ctx)
}

// setupLogs sends podagent's logs to stderr at level, as text or JSON, and quiets the containerd
// client's own logger, which would otherwise report every registry fallback at info level.
func setupLogs(level slog.Level, format logFormat) error {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	clogFormat := clog.TextFormat
	if format == logFormatJSON {
		h = slog.NewJSONHandler(os.Stderr, opts)
		clogFormat = clog.JSONFormat
	}
	slog.SetDefault(slog.New(h))
	// The Kubernetes streaming libraries log through klog: into the same log.
	klog.SetSlogLogger(slog.Default())
	if err := clog.SetFormat(clogFormat); err != nil {
		return err
	}
	return clog.SetLevel("warn")
}

// setupLogging is setupLogs for `podagent mirror`, whose logs are text at its --log-level.
func setupLogging(level string) error {
	l, err := parseLogLevel(level)
	if err != nil {
		return fmt.Errorf("log-level: %w", err)
	}
	return setupLogs(l, logFormatText)
}

// parseFlags parses args into fs; help reports that -h was asked for (and answered).
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return false, nil
}
