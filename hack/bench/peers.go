package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// peer runs kubia pods one way: podagent, containerd's CRI through crictl, or podman kube play.
type peer interface {
	Name() string
	// Run starts pod name with one container running cmd (kubia's server when empty) and returns
	// its IP once the runtime reports it.
	Run(ctx context.Context, name string, cmd []string) (ip string, err error)
	// Remove deletes pod name and returns once nothing of it runs.
	Remove(ctx context.Context, name string) error
	// LogPath is the log file of pod name's container.
	LogPath(ctx context.Context, name string) (string, error)
	// Helpers are the per-pod processes the runtime adds beside the containers' own (shims, log
	// drivers, conmon), by kind.
	Helpers() map[string][]int
	// Daemon is the long-running process of the peer that is not containerd (podagent), or 0.
	Daemon() int
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// --- podagent: static pods in a manifest directory, read back from containerd's labels.

type podagentPeer struct {
	manifests, logDir, node string
	pid                     int
	address                 string
	client                  *containerd.Client
}

func (p *podagentPeer) Name() string { return "podagent" }
func (p *podagentPeer) Daemon() int  { return p.pid }

func (p *podagentPeer) Run(ctx context.Context, name string, cmd []string) (string, error) {
	c := map[string]any{"name": "kubia", "image": "docker.io/luksa/kubia:latest", "imagePullPolicy": "IfNotPresent"}
	if len(cmd) > 0 {
		c["image"], c["command"] = "docker.io/library/busybox:latest", cmd
	}
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec":     map[string]any{"containers": []any{c}, "terminationGracePeriodSeconds": 1}}
	raw, _ := json.Marshal(pod)
	tmp := filepath.Join(p.manifests, "."+name+".tmp")
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, filepath.Join(p.manifests, name+".json")); err != nil {
		return "", err
	}
	for {
		ctrs, err := p.client.ContainerService().List(ctx, fmt.Sprintf(`labels."io.podagent.kind"==sandbox,labels."io.kubernetes.pod.name"==%s`, p.podName(name)))
		if err != nil {
			return "", err
		}
		for _, c := range ctrs {
			if ip := c.Labels["io.podagent.pod-ip"]; ip != "" {
				return ip, nil
			}
		}
		if err := pause(ctx, 10*time.Millisecond); err != nil {
			return "", fmt.Errorf("pod %s has no IP: %w", name, err)
		}
	}
}

// podName is the name the agent gives a static pod: its mirror pod's.
func (p *podagentPeer) podName(name string) string { return name + "-" + p.node }

func (p *podagentPeer) Remove(ctx context.Context, name string) error {
	if err := os.Remove(filepath.Join(p.manifests, name+".json")); err != nil {
		return err
	}
	for {
		ctrs, err := p.client.ContainerService().List(ctx, fmt.Sprintf(`labels."io.kubernetes.pod.name"==%s`, p.podName(name)))
		if err != nil {
			return err
		}
		if len(ctrs) == 0 {
			return nil
		}
		if err := pause(ctx, 10*time.Millisecond); err != nil {
			return fmt.Errorf("pod %s not removed: %w", name, err)
		}
	}
}

func (p *podagentPeer) LogPath(ctx context.Context, name string) (string, error) {
	for {
		m, _ := filepath.Glob(filepath.Join(p.logDir, "default_"+p.podName(name)+"_*", "*", "0.log"))
		if len(m) == 1 {
			return m[0], nil
		}
		if err := pause(ctx, 10*time.Millisecond); err != nil {
			return "", fmt.Errorf("log of pod %s: %w", name, err)
		}
	}
}

func (p *podagentPeer) Helpers() map[string][]int {
	shims := shimsOf(p.address)
	return map[string][]int{"shim": shims, "log driver": procsWhere(func(args []string) bool {
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--path" && strings.HasPrefix(args[i+1], p.logDir+"/") {
				return true
			}
		}
		return false
	})}
}

// --- containerd's CRI plugin through crictl, on its own containerd.

type criPeer struct {
	crictl, endpoint, address, dir string
	ids                            map[string]string // pod name: sandbox ID
}

func (p *criPeer) Name() string { return "containerd CRI (crictl)" }
func (p *criPeer) Daemon() int  { return 0 }

func (p *criPeer) cri(ctx context.Context, args ...string) (string, error) {
	return run(ctx, p.crictl, append([]string{"--runtime-endpoint", p.endpoint, "--image-endpoint", p.endpoint, "--timeout", "60s"}, args...)...)
}

func (p *criPeer) Run(ctx context.Context, name string, cmd []string) (string, error) {
	uid := fmt.Sprintf("uid-%s-%d", name, time.Now().UnixNano())
	logDir := filepath.Join(p.dir, "logs", name)
	sb := map[string]any{"metadata": map[string]any{"name": name, "namespace": "default", "uid": uid},
		"hostname": name, "log_directory": logDir, "linux": map[string]any{}}
	c := map[string]any{"metadata": map[string]any{"name": "kubia"}, "image": map[string]any{"image": "docker.io/luksa/kubia:latest"},
		"log_path": "kubia/0.log", "linux": map[string]any{}}
	if len(cmd) > 0 {
		c["image"], c["command"] = map[string]any{"image": "docker.io/library/busybox:latest"}, cmd
	}
	sbFile, cFile := filepath.Join(p.dir, name+"-pod.json"), filepath.Join(p.dir, name+"-ctr.json")
	for f, v := range map[string]any{sbFile: sb, cFile: c} {
		raw, _ := json.Marshal(v)
		if err := os.WriteFile(f, raw, 0o644); err != nil {
			return "", err
		}
	}
	// One call, as a kubelet would make RunPodSandbox, CreateContainer, StartContainer.
	id, err := p.cri(ctx, "run", "--no-pull", cFile, sbFile)
	if err != nil {
		return "", err
	}
	_ = id
	pods, err := p.cri(ctx, "pods", "-q", "--name", "^"+name+"$")
	if err != nil {
		return "", err
	}
	p.ids[name] = strings.Fields(pods)[0]
	out, err := p.cri(ctx, "inspectp", "-o", "json", p.ids[name])
	if err != nil {
		return "", err
	}
	var st struct {
		Status struct {
			Network struct{ IP string } `json:"network"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return "", err
	}
	return st.Status.Network.IP, nil
}

func (p *criPeer) Remove(ctx context.Context, name string) error {
	id := p.ids[name]
	if _, err := p.cri(ctx, "stopp", id); err != nil {
		return err
	}
	_, err := p.cri(ctx, "rmp", id)
	delete(p.ids, name)
	return err
}

func (p *criPeer) LogPath(_ context.Context, name string) (string, error) {
	return filepath.Join(p.dir, "logs", name, "kubia", "0.log"), nil
}

func (p *criPeer) Helpers() map[string][]int {
	return map[string][]int{"shim": shimsOf(p.address)}
}

// --- podman kube play.

type podmanPeer struct {
	network, dir string
}

func (p *podmanPeer) Name() string { return "podman kube play" }
func (p *podmanPeer) Daemon() int  { return 0 }

func (p *podmanPeer) Run(ctx context.Context, name string, cmd []string) (string, error) {
	c := map[string]any{"name": "kubia", "image": "docker.io/luksa/kubia:latest", "imagePullPolicy": "IfNotPresent"}
	if len(cmd) > 0 {
		c["image"], c["command"] = "docker.io/library/busybox:latest", cmd
	}
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"containers": []any{c}}}
	raw, _ := json.Marshal(pod)
	f := filepath.Join(p.dir, name+".json")
	if err := os.WriteFile(f, raw, 0o644); err != nil {
		return "", err
	}
	if _, err := run(ctx, "podman", "kube", "play", "--network", p.network, "--log-driver", "k8s-file", f); err != nil {
		return "", err
	}
	return run(ctx, "podman", "inspect", "--format", "{{(index .NetworkSettings.Networks \""+p.network+"\").IPAddress}}", name+"-kubia")
}

func (p *podmanPeer) Remove(ctx context.Context, name string) error {
	_, err := run(ctx, "podman", "pod", "rm", "-f", "-t", "1", name)
	return err
}

func (p *podmanPeer) LogPath(ctx context.Context, name string) (string, error) {
	return run(ctx, "podman", "inspect", "--format", "{{.HostConfig.LogConfig.Path}}", name+"-kubia")
}

func (p *podmanPeer) Helpers() map[string][]int {
	return map[string][]int{"conmon": procsWhere(func(args []string) bool { return filepath.Base(args[0]) == "conmon" })}
}
