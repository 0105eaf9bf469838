package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/netns"
	"github.com/podagent/podagent/runtime"
)

// Run runs the agent until ctx ends. Pods keep running when it returns, as with the kubelet.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	ctx = namespaces.WithNamespace(ctx, cfg.ContainerdNamespace)
	a, err := newAgent(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.rt.Close()
	slog.Info("podagent started", "node", cfg.NodeName, "containerd", cfg.ContainerdAddress,
		"namespace", cfg.ContainerdNamespace, "pod_cidr", cfg.PodCIDR, "manifest_dir", cfg.ManifestDir)
	if cfg.Listen != "" {
		slog.Warn("the Kubernetes API is not served yet; --listen has no effect in this version", "listen", cfg.Listen)
	}
	return a.loop(ctx)
}

type agent struct {
	cfg Config
	rt  *runtime.Runtime
	// failed holds, per pod UID, when a failed start may be retried.
	failed map[string]time.Time
	// reported holds the last error shown per manifest file, so that one is logged once.
	reported map[string]string
}

func newAgent(ctx context.Context, cfg Config) (*agent, error) {
	for _, d := range []string{cfg.RootDir, cfg.RunDir, cfg.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create directory %s: %w", d, err)
		}
	}
	network, err := netns.New(NetworkOptions(cfg))
	if err != nil {
		return nil, err
	}
	rt, err := runtime.New(ctx, RuntimeConfig(cfg), network)
	if err != nil {
		return nil, err
	}
	for _, archive := range cfg.ImageArchives {
		if err := importArchive(ctx, rt, archive); err != nil {
			rt.Close()
			return nil, err
		}
	}
	return &agent{cfg: cfg, rt: rt, failed: map[string]time.Time{}, reported: map[string]string{}}, nil
}

// NetworkOptions is the pod network of an agent configured by cfg.
func NetworkOptions(cfg Config) netns.Options {
	return netns.Options{
		NetworkConfig: netns.NetworkConfig{
			Name:        cfg.NetworkName(),
			Bridge:      cfg.BridgeName,
			Subnet:      cfg.PodCIDR,
			IPAMDataDir: filepath.Join(cfg.RootDir, "ipam"),
		},
		PluginDirs:   cfg.CNIPluginDirs,
		CacheDir:     filepath.Join(cfg.RootDir, "cni-cache"),
		NamespaceDir: filepath.Join(cfg.RunDir, "netns"),
	}
}

// RuntimeConfig is the runtime configuration of an agent configured by cfg.
func RuntimeConfig(cfg Config) runtime.Config {
	return runtime.Config{
		Address:     cfg.ContainerdAddress,
		Namespace:   cfg.ContainerdNamespace,
		Snapshotter: cfg.Snapshotter,
		RootDir:     cfg.RootDir,
		RunDir:      cfg.RunDir,
		LogDir:      cfg.LogDir,
		PauseImage:  cfg.PauseImage,
		ResolvConf:  cfg.ResolvConf,
	}
}

func importArchive(ctx context.Context, rt *runtime.Runtime, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open image archive: %w", err)
	}
	defer f.Close()
	names, err := rt.ImportArchive(ctx, f)
	if err != nil {
		return fmt.Errorf("image archive %s: %w", path, err)
	}
	slog.Info("imported images", "archive", path, "images", names)
	return nil
}

// failedStartBackoff is how long a pod whose start failed waits before the next try.
const failedStartBackoff = 10 * time.Second

func (a *agent) loop(ctx context.Context) error {
	t := time.NewTicker(a.cfg.SyncPeriod)
	defer t.Stop()
	for {
		if err := a.sync(ctx); err != nil {
			slog.Error("sync", "err", err)
		}
		select {
		case <-ctx.Done():
			slog.Info("podagent stopping; pods keep running")
			return nil
		case <-t.C:
		}
	}
}

// sync makes what runs match the manifest directory: pods that should run and do not are started,
// pods that run and should not are removed.
func (a *agent) sync(ctx context.Context) error {
	desired := map[string]*corev1.Pod{}
	if a.cfg.ManifestDir != "" {
		pods, errs := readManifestDir(a.cfg.ManifestDir, a.cfg.NodeName)
		for path, err := range errs {
			if a.reported[path] != err.Error() {
				slog.Error("skipping manifest", "path", path, "err", err)
				a.reported[path] = err.Error()
			}
		}
		for _, p := range pods {
			desired[string(p.UID)] = p
		}
	}
	sbs, err := a.rt.ListSandboxes(ctx)
	if err != nil {
		return err
	}
	running := map[string]runtime.PodRef{}
	for _, sb := range sbs {
		running[sb.Pod.UID] = sb.Pod
	}
	var errs []error
	for uid, ref := range running {
		if _, ok := desired[uid]; ok {
			continue
		}
		if err := a.rt.RemovePod(ctx, ref, runtime.UsePodGracePeriod); err != nil {
			errs = append(errs, err)
		}
	}
	for uid, pod := range desired {
		if _, ok := running[uid]; ok || time.Now().Before(a.failed[uid]) {
			continue
		}
		if _, err := a.rt.RunPod(ctx, pod); err != nil {
			a.failed[uid] = time.Now().Add(failedStartBackoff)
			errs = append(errs, err)
			continue
		}
		delete(a.failed, uid)
	}
	return errors.Join(errs...)
}
