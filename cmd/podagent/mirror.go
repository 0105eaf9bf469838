package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"syscall"

	"github.com/podagent/podagent/mirror"
)

// serveMirror runs `podagent mirror`: the images of OCI archives served as a read-only registry,
// to be given to the agent as a mirror (--registry-mirror docker.io=http://ADDR) on a host that
// has no registry.
func serveMirror(args []string) error {
	fs := flag.NewFlagSet("mirror", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:5000", "address to serve the registry on")
	var archives []string
	fs.Func("image-archive", "OCI image archive whose images to serve (repeatable)", func(s string) error {
		archives = append(archives, s)
		return nil
	})
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if len(archives) == 0 {
		return errors.New("mirror: at least one --image-archive is needed")
	}
	if err := setupLogging(*logLevel); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	m, err := mirror.StartFromArchives(ln, archives...)
	if err != nil {
		return err
	}
	slog.Info("serving images", "addr", m.Addr, "archives", archives)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return m.Close()
}
