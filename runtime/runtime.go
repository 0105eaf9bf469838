// Package runtime runs pods on containerd: images, the pause sandbox that holds a pod's network,
// UTS and IPC namespaces, app containers joined to it, exec, and listing what runs by label so that
// a restarted agent can re-adopt it.
package runtime

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"golang.org/x/sys/unix"

	"github.com/podagent/podagent/netns"
)

// Config configures a Runtime.
type Config struct {
	// Address is containerd's socket.
	Address string
	// Namespace is the containerd namespace holding this agent's containers and images; two agents
	// with different namespaces never see each other's pods.
	Namespace string
	// Snapshotter unpacks images and makes container root filesystems.
	Snapshotter string
	// RootDir holds pod directories (hosts files, volumes).
	RootDir string
	// RunDir holds per-sandbox state that must not survive a reboot (the pod's /dev/shm).
	RunDir string
	// PauseImage is the sandbox image; the agent imports it before running pods.
	PauseImage string
	// LogDir holds container logs in the kubelet's layout.
	LogDir string
	// LogDriver is the binary the shim starts to write each container's log (podagent itself);
	// a podagent-logger beside it is used instead (see resolveLogDriver). LogMaxSize and LogMaxFiles are its rotation settings.
	LogDriver   string
	LogMaxSize  int64
	LogMaxFiles int
	// ResolvConf is copied into every pod as /etc/resolv.conf.
	ResolvConf string
	// Mirrors maps a registry host as image references name it (docker.io, registry.example.com:5000)
	// to mirror URLs (http://127.0.0.1:5000) that pulls try first, in order, before the registry
	// itself, as containerd's hosts.toml does. ParseRegistryMirror parses the flag form.
	Mirrors map[string][]string
}

// Runtime runs pods on containerd.
type Runtime struct {
	cfg    Config
	client *containerd.Client
	net    *netns.Network
	limits Limits
	// logDriver is the log driver the shims run (see resolveLogDriver).
	logDriver string
	// shimPerContainer makes tasks the way podagent did before pods had one shim: in tests, a
	// pod as an older agent left it.
	shimPerContainer bool
}

// New connects to containerd. It changes nothing on the host.
func New(ctx context.Context, cfg Config, network *netns.Network) (*Runtime, error) {
	client, err := containerd.New(cfg.Address, containerd.WithDefaultNamespace(cfg.Namespace))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", cfg.Address, err)
	}
	if _, err := client.Version(ctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("containerd at %s does not answer: %w", cfg.Address, err)
	}
	limits, err := hostLimits()
	if err != nil {
		client.Close()
		return nil, err
	}
	return &Runtime{cfg: cfg, client: client, net: network, limits: limits, logDriver: resolveLogDriver(cfg.LogDriver)}, nil
}

// Close closes the connection to containerd. Containers keep running.
func (r *Runtime) Close() error { return r.client.Close() }

// Client is the containerd client, for callers that import images or inspect state.
func (r *Runtime) Client() *containerd.Client { return r.client }

// Network is the pod network the runtime attaches sandboxes to.
func (r *Runtime) Network() *netns.Network { return r.net }

// ServerVersion is containerd's version, for the node's nodeInfo.
func (r *Runtime) ServerVersion(ctx context.Context) (string, error) {
	v, err := r.client.Version(ctx)
	if err != nil {
		return "", fmt.Errorf("containerd version: %w", err)
	}
	return v.Version, nil
}

// hostLimits reads what the agent itself may hand to its containers (see Limits).
func hostLimits() (Limits, error) {
	var l Limits
	raw, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return l, fmt.Errorf("read the agent's oom_score_adj: %w", err)
	}
	if l.MinOOMScoreAdj, err = strconv.Atoi(strings.TrimSpace(string(raw))); err != nil {
		return l, fmt.Errorf("parse the agent's oom_score_adj %q: %w", raw, err)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return l, fmt.Errorf("read the agent's RLIMIT_NOFILE: %w", err)
	}
	l.MaxNofile = rl.Max
	l.MemoryCapacity = memTotal()
	if l.MinOOMScoreAdj > sandboxOOMScoreAdj {
		slog.Info("oom_score_adj below the agent's own is clamped to it", "agent_oom_score_adj", l.MinOOMScoreAdj)
	}
	return l, nil
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := bytes.CutPrefix(s.Bytes(), []byte("MemTotal:")); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// newID returns a random 64-hex-character ID, the form containerd's CRI uses.
func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}
