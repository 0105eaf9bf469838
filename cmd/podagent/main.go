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
	"strings"
	"syscall"

	"github.com/podagent/podagent/agent"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
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
	fmt.Fprintln(os.Stderr, "usage: podagent serve [flags]   (podagent serve -h lists the flags)")
}

func serve(args []string) error {
	cfg := agent.DefaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.RootDir, "root-dir", cfg.RootDir, "directory for the agent's persistent state")
	fs.StringVar(&cfg.RunDir, "run-dir", cfg.RunDir, "directory for per-boot state (network namespaces, /dev/shm)")
	fs.StringVar(&cfg.LogDir, "log-dir", cfg.LogDir, "directory for container logs")
	fs.StringVar(&cfg.ContainerdAddress, "containerd-address", cfg.ContainerdAddress, "containerd socket")
	fs.StringVar(&cfg.ContainerdNamespace, "containerd-namespace", cfg.ContainerdNamespace, "containerd namespace for this agent's containers and images")
	fs.StringVar(&cfg.Snapshotter, "snapshotter", cfg.Snapshotter, "containerd snapshotter")
	fs.StringVar(&cfg.PodCIDR, "pod-cidr", cfg.PodCIDR, "pod network CIDR")
	fs.StringVar(&cfg.BridgeName, "bridge-name", cfg.BridgeName, "Linux bridge of the pod network (also the CNI network name)")
	fs.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "name of this node")
	fs.Func("node-labels", "node labels, k=v[,k=v...]", func(s string) error {
		labels, err := parseLabels(s)
		if err != nil {
			return err
		}
		cfg.NodeLabels = labels
		return nil
	})
	fs.StringVar(&cfg.ManifestDir, "manifest-dir", cfg.ManifestDir, "directory of static pod manifests")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address of the Kubernetes API")
	fs.StringVar(&cfg.PauseImage, "pause-image", cfg.PauseImage, "sandbox (pause) image")
	fs.Func("image-archive", "OCI image archive to import at start (repeatable)", func(s string) error {
		cfg.ImageArchives = append(cfg.ImageArchives, s)
		return nil
	})
	fs.StringVar(&cfg.ResolvConf, "resolv-conf", cfg.ResolvConf, "resolv.conf given to pods")
	fs.DurationVar(&cfg.SyncPeriod, "sync-period", cfg.SyncPeriod, "how often the manifest directory is read")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("log-level: %w", err)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return agent.Run(ctx, cfg)
}

func parseLabels(s string) (map[string]string, error) {
	labels := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("label %q is not key=value", kv)
		}
		labels[k] = v
	}
	return labels, nil
}
