package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/podagent/podagent/agent/source"
	"github.com/podagent/podagent/netns"
	"github.com/podagent/podagent/runtime"
)

// New connects to containerd and, through client, to the Kubernetes API: it registers the node,
// starts the caches of the pods bound to it and of its Node, and takes the static pods the API
// still shows as mirrors until their sources report. Nothing runs until Run.
func New(ctx context.Context, cfg Config, client kubernetes.Interface) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	ctx = namespaces.WithNamespace(ctx, cfg.ContainerdNamespace)
	a, err := newAgent(ctx, cfg, client)
	if err != nil {
		return nil, err
	}
	if err := a.start(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Run syncs pods until ctx ends, then waits for its loops and pod workers to stop. Containers keep
// running.
func (a *Agent) Run(ctx context.Context) error {
	ctx = namespaces.WithNamespace(ctx, a.cfg.ContainerdNamespace)
	cfg := a.cfg
	slog.Info("podagent started", "node", cfg.NodeName, "containerd", cfg.ContainerdAddress,
		"namespace", cfg.ContainerdNamespace, "pod_cidr", cfg.PodCIDR, "manifest_dir", cfg.ManifestDir,
		"manifest_url", cfg.ManifestURL)
	a.loops(ctx)
	slog.Info("podagent stopped; pods keep running")
	return nil
}

// Agent is a node agent: it runs the pods bound to its node, and its static pods, on containerd,
// and reports their status and its node's through the Kubernetes API.
type Agent struct {
	cfg     Config
	rt      *runtime.Runtime
	client  kubernetes.Interface
	pods    *podCache
	static  *staticPods
	hostIP  string
	nodeUID types.UID
	images  imageIDCache
	metrics *metrics
	events  eventNames
	// runCtx is Run's context once Run has begun: the cache's events start workers with it.
	runCtx atomic.Pointer[context.Context]
	// stopCaches ends the API caches, which outlive Run so that logs and exec keep working
	// while the agent shuts down.
	stopCaches context.CancelFunc

	kubeletHandlerOnce sync.Once
	kubeletHandler     http.Handler

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	wg      sync.WaitGroup
}

func newAgent(ctx context.Context, cfg Config, client kubernetes.Interface) (_ *Agent, retErr error) {
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
	a := &Agent{cfg: cfg, rt: rt, client: client, workers: map[types.UID]*podWorker{}, metrics: newMetrics()}
	a.static = newStaticPods(a)
	return a, nil
}

// Close stops the API caches and releases the containerd connection. Call it after Run has
// returned.
func (a *Agent) Close() error {
	a.wg.Wait()
	if a.stopCaches != nil {
		a.stopCaches()
	}
	return a.rt.Close()
}

// start registers the node and fills the caches of what the API says the node runs.
func (a *Agent) start(ctx context.Context) error {
	// containerd keeps its state beside its socket (/run/containerd); a shim an earlier agent
	// left while it was killed is stopped before anything of this agent's starts.
	if err := a.rt.ReapOrphanShims(ctx, filepath.Dir(a.cfg.ContainerdAddress)); err != nil {
		slog.Warn("orphan shims", "err", err)
	}
	if err := a.rt.ReleaseLeases(ctx); err != nil {
		slog.Warn("leases", "err", err)
	}
	version, err := a.rt.ServerVersion(ctx)
	if err != nil {
		return err
	}
	facts := readHostFacts(ctx, a.cfg.RootDir, version, a.cfg.NodeIP)
	if a.cfg.Kubeconfig != "" {
		if _, port, err := net.SplitHostPort(a.cfg.KubeletListen); err == nil {
			p, _ := strconv.ParseInt(port, 10, 32)
			facts.KubeletPort = int32(p)
		}
	}
	node, err := a.registerNode(ctx, facts)
	if err != nil {
		return err
	}
	a.nodeUID = node.UID
	for _, addr := range node.Status.Addresses {
		if addr.Type == corev1.NodeInternalIP {
			a.hostIP = addr.Address
			break
		}
	}
	cacheCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stopCaches = stop
	if a.pods, err = startPodCache(cacheCtx, a.client, a.cfg.NodeName, a.onPodEvent); err != nil {
		return err
	}
	a.static.adoptMirrors(a.pods.mirrors())
	return nil
}

// loops runs the agent's loops until ctx ends, then waits for them and for every pod worker.
func (a *Agent) loops(ctx context.Context) {
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){
		a.dispatchPods, a.watchTasks, a.collectOrphans, a.runSources, a.heartbeat, a.renewLease,
	} {
		wg.Go(func() { loop(ctx) })
	}
	wg.Wait()
	a.wg.Wait()
}

// worker returns the worker of a pod, starting one if it has none.
func (a *Agent) worker(ctx context.Context, uid types.UID, namespace, name string) *podWorker {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w, ok := a.workers[uid]; ok {
		return w
	}
	w := newPodWorker(uid, namespace, name)
	a.workers[uid] = w
	a.wg.Go(func() {
		for {
			w.run(ctx, a)
			// A poke that came while the worker was finishing (the pod came back) is not lost:
			// the worker runs again. Pokes happen under a.mu, so none slips in after this check.
			a.mu.Lock()
			if ctx.Err() != nil || len(w.wake) == 0 {
				delete(a.workers, uid)
				a.mu.Unlock()
				return
			}
			a.mu.Unlock()
		}
	})
	return w
}

// poke wakes the worker of a pod, starting one if it has none.
func (a *Agent) poke(ctx context.Context, uid types.UID, namespace, name string) {
	w := a.worker(ctx, uid, namespace, name)
	a.mu.Lock()
	defer a.mu.Unlock()
	w.poke()
}

// dispatchPods gives a worker to every pod the agent knows at start (the API's and the static
// ones); from then on the caches' events and the sources wake them.
func (a *Agent) dispatchPods(ctx context.Context) {
	// Set first: a change the cache sees from now on wakes its worker itself.
	a.runCtx.Store(&ctx)
	for _, p := range a.pods.all() {
		if !isMirror(p) {
			a.poke(ctx, p.UID, p.Namespace, p.Name)
		}
	}
	for _, p := range a.static.all() {
		a.poke(ctx, p.UID, p.Namespace, p.Name)
	}
	<-ctx.Done()
}

// onPodEvent wakes the worker of a pod the API changed. A mirror pod is no pod to run: its change
// wakes the worker of its static pod, which keeps it current.
func (a *Agent) onPodEvent(p *corev1.Pod, deleted bool) {
	ctxp := a.runCtx.Load()
	if ctxp == nil {
		return // Run has not begun: dispatchPods will find the pod in the cache
	}
	ctx := *ctxp
	if isMirror(p) {
		if sp := a.static.byName(p.Namespace, p.Name); sp != nil {
			a.poke(ctx, sp.UID, sp.Namespace, sp.Name)
		}
		return
	}
	if deleted {
		// Deleted at once (forced, or never started): its containers get the grace period the
		// deletion gave, not their own.
		grace := int64(0)
		if g := p.DeletionGracePeriodSeconds; g != nil {
			grace = *g
		}
		a.worker(ctx, p.UID, p.Namespace, p.Name).goneGrace.Store(grace)
	}
	a.poke(ctx, p.UID, p.Namespace, p.Name)
}

// watchTasks wakes a pod's worker as soon as one of its processes starts or exits.
func (a *Agent) watchTasks(ctx context.Context) {
	for ctx.Err() == nil {
		err := a.rt.TaskEvents(ctx, func(p runtime.PodRef) {
			if p.UID != "" {
				a.poke(ctx, types.UID(p.UID), p.Namespace, p.Name)
			}
		})
		if err != nil && ctx.Err() == nil {
			slog.Warn("containerd events; resubscribing", "err", err)
			sleepCtx(ctx, time.Second)
		}
	}
}

// collectOrphans gives a worker to every pod the runtime runs, so that what no stored pod owns
// (a pod deleted while the agent was down, a crash mid-start) is found and removed.
func (a *Agent) collectOrphans(ctx context.Context) {
	t := time.NewTicker(resyncPeriod)
	defer t.Stop()
	for {
		sbs, err := a.rt.ListSandboxes(ctx)
		if err == nil {
			for _, sb := range sbs {
				a.poke(ctx, types.UID(sb.Pod.UID), sb.Pod.Namespace, sb.Pod.Name)
			}
		}
		ctrs, err2 := a.rt.ListContainers(ctx)
		if err2 == nil {
			running := 0
			for _, c := range ctrs {
				a.worker(ctx, types.UID(c.Pod.UID), c.Pod.Namespace, c.Pod.Name)
				if c.State == runtime.ContainerRunning {
					running++
				}
			}
			a.metrics.runningCtrs.Set(float64(running))
		}
		if err == nil {
			ready := 0
			for _, sb := range sbs {
				if sb.Ready() {
					ready++
				}
			}
			a.metrics.runningPods.Set(float64(ready))
		}
		a.metrics.containerLogSum.Set(logBytes(a.cfg.LogDir))
		if err := errors.Join(err, err2); err != nil && ctx.Err() == nil {
			slog.Error("list what runs", "err", err)
		}
		if err == nil && err2 == nil {
			if err := a.removeLeftoverFiles(ctx); err != nil && ctx.Err() == nil {
				slog.Error("remove files of removed pods", "err", err)
			}
			if err := a.rt.CollectNetworks(ctx); err != nil && ctx.Err() == nil {
				slog.Error("release networks of removed sandboxes", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// staticResync is how often mirror pods without a static pod are looked for.
const staticResync = 2 * time.Second

// removeLeftoverFiles removes the directories and logs of pods that neither the store nor the
// runtime knows: what an agent killed in the middle of removing a pod left. The files are listed
// first: a pod's files are made only after its object is stored, so a pod whose files are listed
// and whose object and containers are gone after that is gone for good.
func (a *Agent) removeLeftoverFiles(ctx context.Context) error {
	uids, err := a.rt.PodDirUIDs()
	if err != nil {
		return err
	}
	refs, err := a.rt.PodLogRefs()
	if err != nil {
		return err
	}
	for _, uid := range uids {
		refs = append(refs, runtime.PodRef{UID: uid})
	}
	if len(refs) == 0 {
		return nil
	}
	known := map[string]bool{}
	for _, p := range a.pods.all() {
		known[string(p.UID)] = true
	}
	for _, p := range a.static.all() {
		known[string(p.UID)] = true
	}
	sbs, err := a.rt.ListSandboxes(ctx)
	if err != nil {
		return err
	}
	for _, sb := range sbs {
		known[sb.Pod.UID] = true
	}
	ctrs, err := a.rt.ListContainers(ctx)
	if err != nil {
		return err
	}
	for _, c := range ctrs {
		known[c.Pod.UID] = true
	}
	var errs []error
	for _, ref := range refs {
		if !known[ref.UID] {
			slog.Info("removing files of a removed pod", "pod", ref.String(), "uid", ref.UID)
			errs = append(errs, a.rt.RemovePod(ctx, ref, 0))
		}
	}
	return errors.Join(errs...)
}

// runSources takes the static pods of the manifest directory and URL, as the kubelet's pod config
// merges its sources, and keeps their mirror pods in the API.
func (a *Agent) runSources(ctx context.Context) {
	updates := make(chan source.Update)
	var wg sync.WaitGroup
	defer wg.Wait()
	if a.cfg.ManifestDir != "" {
		wg.Go(func() {
			if err := source.WatchDir(ctx, a.cfg.ManifestDir, a.cfg.NodeName, a.cfg.SyncPeriod, updates); err != nil && ctx.Err() == nil {
				slog.Error("manifest directory", "dir", a.cfg.ManifestDir, "err", err)
			}
		})
	}
	if a.cfg.ManifestURL != "" {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			if err := source.PollURL(ctx, client, a.cfg.ManifestURL, a.cfg.NodeName, a.cfg.HTTPCheckPeriod, updates); err != nil && ctx.Err() == nil {
				slog.Error("manifest URL", "url", a.cfg.ManifestURL, "err", err)
			}
		})
	}
	t := time.NewTicker(staticResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-updates:
			for _, uid := range a.static.apply(u) {
				a.poke(ctx, uid.UID, uid.Namespace, uid.Name)
			}
		case <-t.C:
			// A mirror pod whose static pod is gone (its manifest removed while the agent was
			// down, or its worker finished before the mirror could go) is deleted.
			a.removeOrphanMirrors(ctx)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
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
		LogDriver:   cfg.LogDriver,
		LogMaxSize:  cfg.ContainerLogMaxSize,
		LogMaxFiles: cfg.ContainerLogMaxFiles,
		PauseImage:  cfg.PauseImage,
		ResolvConf:  cfg.ResolvConf,
		Mirrors:     cfg.RegistryMirrors,
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
