package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/vishvananda/netlink"

	"github.com/podagent/podagent/internal/testimages"
	"github.com/podagent/podagent/logs"
	"github.com/podagent/podagent/logs/driver"
	"github.com/podagent/podagent/netns"
	"github.com/podagent/podagent/runtime"
)

var images_ struct {
	once    sync.Once
	dir     string
	archive string
	err     error
}

// Main runs a package's tests and removes the test images built for them afterwards. Use it as
// `func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }`.
func Main(m *testing.M) int {
	if driver.Invoked(os.Args) {
		// The test binary is the runtime's log driver in tests: a shim started it for a
		// container's output.
		driver.Main(os.Args)
	}
	code := m.Run()
	if images_.dir != "" {
		os.RemoveAll(images_.dir)
	}
	return code
}

// ImageArchive builds the test images (pause, kubia, busybox) once per test binary and returns the
// archive that holds them.
func ImageArchive(t testing.TB) string {
	t.Helper()
	images_.once.Do(func() {
		images_.dir, images_.err = os.MkdirTemp("", "podagent-test-images-")
		if images_.err == nil {
			images_.archive, images_.err = testimages.Build(context.Background(), images_.dir)
		}
	})
	if images_.err != nil {
		t.Fatalf("build test images: %v", images_.err)
	}
	return images_.archive
}

// Runtime is a runtime of one test's own: its own containerd namespace, pod network and
// directories, with the test images imported.
type Runtime struct {
	*runtime.Runtime
	Config  runtime.Config
	Network netns.Options
	Ctx     context.Context
}

// NewRuntime makes a Runtime for t. When t ends it removes every pod, checks that nothing leaked
// (containers, tasks, snapshots of containers, network namespaces, IP reservations, veths), then
// deletes the images and the containerd namespace, which containerd refuses if anything is left.
func NewRuntime(t testing.TB) *Runtime {
	t.Helper()
	RequireContainerd(t)
	dir := t.TempDir()
	return NewRuntimeWith(t, RuntimeConfig(dir), NetworkOptions(dir))
}

// RuntimeConfig is a runtime configuration unique to one test, with its state under dir.
func RuntimeConfig(dir string) runtime.Config {
	return runtime.Config{
		Address:     ContainerdAddress(),
		Namespace:   "podagent-test-" + Suffix(8),
		Snapshotter: "overlayfs",
		RootDir:     filepath.Join(dir, "root"),
		RunDir:      filepath.Join(dir, "run"),
		LogDir:      filepath.Join(dir, "logs"),
		LogDriver:   testBinary(),
		LogMaxSize:  logs.DefaultMaxSize,
		LogMaxFiles: logs.DefaultMaxFiles,
		PauseImage:  testimages.PauseImage,
		ResolvConf:  "/etc/resolv.conf",
	}
}

// NewRuntimeWith is NewRuntime with the given configuration, which must be unique to t.
func NewRuntimeWith(t testing.TB, cfg runtime.Config, netOpts netns.Options) *Runtime {
	t.Helper()
	RequireContainerd(t)
	network, err := netns.New(netOpts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), cfg.Namespace)
	rt, err := runtime.New(ctx, cfg, network)
	if err != nil {
		t.Fatal(err)
	}
	tr := &Runtime{Runtime: rt, Config: cfg, Network: netOpts, Ctx: ctx}
	t.Cleanup(func() { tr.cleanup(t) })
	f, err := os.Open(ImageArchive(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := rt.ImportArchive(ctx, f); err != nil {
		t.Fatal(err)
	}
	return tr
}

// RemoveAll removes every pod the runtime has.
func (r *Runtime) RemoveAll(t testing.TB) {
	t.Helper()
	sbs, err := r.ListSandboxes(r.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctrs, err := r.ListContainers(r.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]runtime.PodRef{}
	for _, s := range sbs {
		pods[s.Pod.UID] = s.Pod
	}
	for _, c := range ctrs {
		pods[c.Pod.UID] = c.Pod
	}
	for _, p := range pods {
		if err := r.RemovePod(r.Ctx, p, time.Second); err != nil {
			t.Errorf("remove pod %s: %v", p, err)
		}
	}
}

// AssertNothingLeft fails t if anything of a pod is left in containerd or on the host.
func (r *Runtime) AssertNothingLeft(t testing.TB) {
	t.Helper()
	if err := r.leftovers(); err != nil {
		t.Error(err)
	}
}

// Leftovers is what AssertNothingLeft reports, for a test that polls until nothing is left.
func (r *Runtime) Leftovers() error { return r.leftovers() }

func (r *Runtime) leftovers() error {
	var errs []error
	client := r.Client()
	ctrs, err := client.Containers(r.Ctx)
	if err != nil {
		return err
	}
	for _, c := range ctrs {
		errs = append(errs, fmt.Errorf("container %s left", c.ID()))
	}
	tasks, err := client.TaskService().List(r.Ctx, nil)
	if err == nil {
		for _, tk := range tasks.Tasks {
			errs = append(errs, fmt.Errorf("task %s left", tk.ID))
		}
	}
	// Image layers are committed snapshots; anything active belonged to a container.
	err = client.SnapshotService(r.Config.Snapshotter).Walk(r.Ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindCommitted {
			errs = append(errs, fmt.Errorf("snapshot %s (%v) left", info.Name, info.Kind))
		}
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("walk snapshots: %w", err))
	}
	if ents, _ := os.ReadDir(r.Network.NamespaceDir); len(ents) > 0 {
		errs = append(errs, fmt.Errorf("network namespaces left in %s: %d", r.Network.NamespaceDir, len(ents)))
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, d := range []string{r.Network.NamespaceDir, r.Config.RunDir, r.Config.RootDir} {
		if strings.Contains(string(mounts), d) {
			errs = append(errs, fmt.Errorf("mounts left under %s", d))
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(r.Config.RunDir, "sandboxes")); len(ents) > 0 {
		errs = append(errs, fmt.Errorf("sandbox run directories left: %d", len(ents)))
	}
	if res, err := r.Runtime.Network().Reservations(); err != nil || len(res) > 0 {
		errs = append(errs, fmt.Errorf("IP reservations left: %v %v", res, err))
	}
	if br, err := netlink.LinkByName(r.Network.Bridge); err == nil {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				errs = append(errs, fmt.Errorf("veth %s left on bridge %s", l.Attrs().Name, r.Network.Bridge))
			}
		}
	}
	// A shim exits shortly after its task is deleted.
	deadline := time.Now().Add(5 * time.Second)
	for {
		shims := shimsOf(r.Config.Namespace)
		if len(shims) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("shim processes left: %v", shims))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ents, _ := os.ReadDir(filepath.Join(r.Config.RootDir, "pods")); len(ents) > 0 {
		errs = append(errs, fmt.Errorf("pod directories left: %d", len(ents)))
	}
	// libcni keeps each attachment's result until its DEL.
	if ents, _ := os.ReadDir(filepath.Join(r.Network.CacheDir, "results")); len(ents) > 0 {
		errs = append(errs, fmt.Errorf("CNI cache entries left in %s: %d", r.Network.CacheDir, len(ents)))
	}
	errs = append(errs, hostPortRules(r.Network)...)
	// An exec whose container was just removed releases its IO as its request ends.
	deadline = time.Now().Add(5 * time.Second)
	for err := OpenExecFIFOs(); ; err = OpenExecFIFOs() {
		if err == nil || time.Now().After(deadline) {
			errs = append(errs, err)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	errs = append(errs, containerCgroups(r.Config.Namespace)...)
	return errors.Join(errs...)
}

// hostPortRules reports the portmap DNAT rules of network: its entries in CNI-HOSTPORT-DNAT
// (commented with the network's name) and the per-sandbox chains that DNAT to a pod address.
func hostPortRules(network netns.Options) []error {
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		return []error{fmt.Errorf("iptables-save: %w", err)}
	}
	_, subnet, err := net.ParseCIDR(network.Subnet)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		left := strings.Contains(line, fmt.Sprintf(`dnat name: \"%s\"`, network.Name))
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "--to-destination" {
				host, _, _ := strings.Cut(f[i+1], ":")
				left = left || subnet.Contains(net.ParseIP(host))
			}
		}
		if left {
			errs = append(errs, fmt.Errorf("hostPort rule of network %s left: %s", network.Name, line))
		}
	}
	return errs
}

// OpenExecFIFOs reports the exec FIFOs this process (the agent, in tests) holds open: the IO of an
// exec'd process that was never released, once no exec runs.
func OpenExecFIFOs() error {
	fds, _ := os.ReadDir("/proc/self/fd")
	var errs []error
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.Contains(target, "/fifo/") && strings.Contains(filepath.Base(target), "exec-") {
			errs = append(errs, fmt.Errorf("exec FIFO left open: fd %s -> %s", fd.Name(), target))
		}
	}
	return errors.Join(errs...)
}

// containerCgroups reports the cgroups of containers left under the namespace's cgroup (containerd
// puts a container's cgroup at /NAMESPACE/ID, in each cgroup v1 hierarchy or in the v2 one); runc
// removes a container's when its task is deleted.
func containerCgroups(ns string) []error {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", ns))
	if d := filepath.Join("/sys/fs/cgroup", ns); isDir(d) {
		dirs = append(dirs, d)
	}
	var errs []error
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.IsDir() {
				errs = append(errs, fmt.Errorf("cgroup %s left", filepath.Join(d, e.Name())))
			}
		}
	}
	return errs
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

func (r *Runtime) cleanup(t testing.TB) {
	r.RemoveAll(t)
	r.AssertNothingLeft(t)
	client := r.Client()
	// A process killed while it pulled or imported leaves its lease (containerd expires them only
	// after a day), and a lease keeps content and snapshots from garbage collection.
	if ls, err := client.LeasesService().List(r.Ctx); err == nil {
		for _, l := range ls {
			if err := client.LeasesService().Delete(r.Ctx, l); err != nil {
				t.Errorf("delete lease %s: %v", l.ID, err)
			}
		}
	}
	imgs, err := client.ImageService().List(r.Ctx)
	if err == nil {
		for i, img := range imgs {
			opts := []images.DeleteOpt{}
			if i == len(imgs)-1 {
				opts = append(opts, images.SynchronousDelete())
			}
			if err := client.ImageService().Delete(r.Ctx, img.Name, opts...); err != nil {
				t.Errorf("delete image %s: %v", img.Name, err)
			}
		}
	}
	// containerd refuses to delete a namespace that still holds anything; garbage collection of
	// the images' content and snapshots runs in the background, so poll.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := client.NamespaceService().Delete(context.Background(), r.Config.Namespace)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("delete containerd namespace %s (something leaked): %v", r.Config.Namespace, err)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// containerd (runc) makes the namespace's parent cgroup for the first container and never
	// removes it; an empty cgroup is removed with rmdir.
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", r.Config.Namespace))
	for _, d := range append(dirs, filepath.Join("/sys/fs/cgroup", r.Config.Namespace)) {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove cgroup of containerd namespace %s: %v", r.Config.Namespace, err)
		}
	}
	r.Close()
	if err := r.Runtime.Network().Destroy(); err != nil {
		t.Error(err)
	}
	AssertNoNATRules(t, r.Network.Name)
}

// shimsOf lists the command lines of the shim processes of containerd namespace ns.
func shimsOf(ns string) []string {
	procs, _ := os.ReadDir("/proc")
	var out []string
	for _, p := range procs {
		raw, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-namespace" && args[i+1] == ns {
				out = append(out, strings.Join(args, " "))
			}
		}
	}
	return out
}

// testBinary is the running test binary, which serves as the log driver (see Main).
func testBinary() string {
	exe, err := os.Executable()
	if err != nil {
		panic(fmt.Sprintf("find the test binary: %v", err))
	}
	return exe
}
