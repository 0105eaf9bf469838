// Package testenv holds what the root/containerd end-to-end tests share: skips with a clear reason
// where the machine cannot run them, and names and networks unique to each test so that tests (and
// a running agent) never collide.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"

	"github.com/podagent/podagent/netns"
)

// CNIPluginDir is where Debian's containernetworking-plugins installs the plugins.
const CNIPluginDir = "/usr/lib/cni"

// ContainerdAddress is the containerd socket the tests use (PODAGENT_TEST_CONTAINERD overrides).
func ContainerdAddress() string {
	if a := os.Getenv("PODAGENT_TEST_CONTAINERD"); a != "" {
		return a
	}
	return "/run/containerd/containerd.sock"
}

// RequireRoot marks t as an end-to-end test that needs root, as containerd's RequiresRoot does.
// Under -short it is skipped: unit runs (`make unit`, `go test -short`) never touch containerd,
// network namespaces, iptables or mounts, since other work may share the host. Without root it
// is skipped too, except in CI (CI set), where a missing dependency fails the test (Missing).
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("long: skipped with -short (end-to-end: containerd, network namespaces, mounts)")
	}
	if os.Geteuid() != 0 {
		Missing(t, "this end-to-end test needs root (run `make test` as root)")
	}
}

// Missing skips t for want of what msg names, or fails it in CI, where nothing may pass by
// skipping.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("missing in CI: %s", msg)
	}
	t.Skip("skipping: " + msg)
}

// RequireNetwork skips t unless it runs as root with the CNI plugins installed.
func RequireNetwork(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join(CNIPluginDir, p)); err != nil {
			Missing(t, fmt.Sprintf("CNI plugin %s not found in %s (apt-get install containernetworking-plugins)", p, CNIPluginDir))
		}
	}
}

// RequireContainerd skips t unless it runs as root and a containerd socket exists.
func RequireContainerd(t testing.TB) {
	t.Helper()
	RequireNetwork(t)
	if _, err := os.Stat(ContainerdAddress()); err != nil {
		Missing(t, fmt.Sprintf("no containerd socket at %s (start containerd, or `make test` does)", ContainerdAddress()))
	}
}

// Suffix returns n random hex characters.
func Suffix(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)[:n]
}

// NetworkOptions returns pod network options unique to one test: its own bridge, /24 subnet and
// state directories under dir.
func NetworkOptions(dir string) netns.Options {
	// A random /24 in 10.200.0.0/13, away from the agent's default pod CIDR.
	n, _ := rand.Int(rand.Reader, big.NewInt(8*256))
	id := Suffix(6)
	return netns.Options{
		NetworkConfig: netns.NetworkConfig{
			Name:        "podagent-test-" + id,
			Bridge:      "pat" + id,
			Subnet:      fmt.Sprintf("10.%d.%d.0/24", 200+n.Int64()/256, n.Int64()%256),
			IPAMDataDir: filepath.Join(dir, "ipam"),
		},
		PluginDirs:   []string{CNIPluginDir},
		CacheDir:     filepath.Join(dir, "cni-cache"),
		NamespaceDir: filepath.Join(dir, "netns"),
	}
}

// Eventually polls cond every 20ms until it returns nil or the deadline passes, then fails t with
// the last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// InNetNS runs fn on a locked OS thread inside the network namespace mounted at path. The thread
// is never unlocked, so Go discards it afterwards and no other goroutine runs in that namespace.
func InNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := vnetns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("open network namespace %s: %w", path, err)
			return
		}
		defer h.Close()
		if err := vnetns.Set(h); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// AssertNoNATRules fails t if any iptables nat rule still names the CNI network.
func AssertNoNATRules(t testing.TB, network string) {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Errorf("iptables-save: %v", err)
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, network) {
			t.Errorf("iptables nat rule of network %s left: %s", network, line)
		}
	}
}
