package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/podagent/podagent/agent/source"
	"github.com/podagent/podagent/apiserver/registry"
	"github.com/podagent/podagent/apiserver/store"
	"github.com/podagent/podagent/netns"
	"github.com/podagent/podagent/runtime"
)

// New opens the agent's state and connects to containerd, and brings the stored cluster objects up
// to date (default namespaces, this node). Nothing runs until Run.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	ctx = namespaces.WithNamespace(ctx, cfg.ContainerdNamespace)
	a, err := newAgent(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := a.start(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Store is the agent's object store.
func (a *Agent) Store() *store.Store { return a.store }

// Registry applies the apiserver's rules to writes to the store.
func (a *Agent) Registry() *registry.Registry { return a.registry }

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

// Agent is a node agent: it runs the pods of its store on containerd and writes their status.
type Agent struct {
	cfg      Config
	rt       *runtime.Runtime
	store    *store.Store
	registry *registry.Registry
	hostIP   string
	nodeUID  types.UID
	images   imageIDCache
	metrics  *metrics
	events   eventNames

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	wg      sync.WaitGroup
}

func newAgent(ctx context.Context, cfg Config) (_ *Agent, retErr error) {
	for _, d := range []string{cfg.RootDir, cfg.RunDir, cfg.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create directory %s: %w", d, err)
		}
	}
	st, err := store.Open(filepath.Join(cfg.RootDir, "state.db"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			st.Close()
		}
	}()
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
	return &Agent{cfg: cfg, rt: rt, store: st, registry: registry.New(st), workers: map[types.UID]*podWorker{}, metrics: newMetrics()}, nil
}

// Close releases the store and the containerd connection. Call it after Run has returned.
func (a *Agent) Close() error {
	a.wg.Wait()
	return errors.Join(a.rt.Close(), a.store.Close())
}

// start brings the stored cluster objects up to date: the default namespaces and this node.
func (a *Agent) start(ctx context.Context) error {
	if err := a.registry.EnsureDefaultNamespaces(ctx); err != nil {
		return err
	}
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
	node, err := a.registerNode(ctx, readHostFacts(ctx, a.cfg.RootDir, version))
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
	return nil
}

// loops runs the agent's loops until ctx ends, then waits for them and for every pod worker.
func (a *Agent) loops(ctx context.Context) {
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){
		a.dispatchPods, a.watchNode, a.watchNamespaces, a.watchTasks, a.collectOrphans, a.runSources, a.heartbeat,
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

// pokeAll wakes every worker (the node changed: an unschedulable pod may now fit).
func (a *Agent) pokeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, w := range a.workers {
		w.poke()
	}
}

// dispatchPods gives every stored pod a worker and wakes it whenever its object changes.
func (a *Agent) dispatchPods(ctx context.Context) {
	a.listWatch(ctx, store.Pods, func(typ watch.EventType, obj store.Object) {
		p := obj.(*corev1.Pod)
		if typ == watch.Deleted {
			// Deleted at once (forced, or never started): its containers get the grace period
			// the deletion gave, not their own.
			grace := int64(0)
			if g := p.DeletionGracePeriodSeconds; g != nil {
				grace = *g
			}
			a.worker(ctx, p.UID, p.Namespace, p.Name).goneGrace.Store(grace)
		}
		a.poke(ctx, p.UID, p.Namespace, p.Name)
	})
}

// watchNode wakes every worker when the node's object changes (its labels decide scheduling).
func (a *Agent) watchNode(ctx context.Context) {
	a.listWatch(ctx, store.Nodes, func(watch.EventType, store.Object) { a.pokeAll() })
}

// watchNamespaces finishes the deletion of Terminating namespaces, on every namespace or pod change
// and at each resync.
func (a *Agent) watchNamespaces(ctx context.Context) {
	kick := make(chan struct{}, 1)
	poke := func(watch.EventType, store.Object) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { a.listWatch(ctx, store.Namespaces, poke) })
	wg.Go(func() { a.listWatch(ctx, store.Pods, poke) })
	defer wg.Wait()
	t := time.NewTicker(resyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
		}
		if err := a.syncNamespaces(ctx); err != nil && ctx.Err() == nil {
			slog.Error("namespace deletion", "err", err)
		}
	}
}

// listWatch calls fn for every object of resource, then for every change, re-listing whenever the
// watch ends (a watcher that fell behind is closed by the store), until ctx ends.
func (a *Agent) listWatch(ctx context.Context, resource string, fn func(watch.EventType, store.Object)) {
	for ctx.Err() == nil {
		objs, rv, err := a.store.List(ctx, resource, "")
		if err != nil {
			slog.Error("list", "resource", resource, "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		for _, obj := range objs {
			fn(watch.Added, obj)
		}
		ch, err := a.store.Watch(ctx, resource, "", rv)
		if err != nil {
			slog.Error("watch", "resource", resource, "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		for ev := range ch {
			fn(ev.Type, ev.Object)
		}
	}
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
		if err := a.collectEvents(ctx); err != nil && ctx.Err() == nil {
			slog.Error("remove old events", "err", err)
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

// staticResync is how often the static pods' last known state is applied to the store again.
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
	objs, _, err := a.store.List(ctx, store.Pods, "")
	if err != nil {
		return err
	}
	for _, obj := range objs {
		known[string(obj.(*corev1.Pod).UID)] = true
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

// runSources feeds the static pods of the manifest directory and URL into the store.
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
	sp := &staticPods{a: a, reported: map[string]string{}}
	// The last update of each source is applied again now and then: a static pod whose mirror was
	// still being deleted when its manifest came back is created once the old one is gone.
	last := map[string]source.Update{}
	t := time.NewTicker(staticResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-updates:
			last[u.Source] = u
			if err := sp.apply(ctx, u); err != nil && ctx.Err() == nil {
				slog.Error("static pods", "source", u.Source, "err", err)
			}
		case <-t.C:
			for _, u := range last {
				if err := sp.apply(ctx, u); err != nil && ctx.Err() == nil {
					slog.Error("static pods", "source", u.Source, "err", err)
				}
			}
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
