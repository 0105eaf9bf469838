package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/podagent/podagent/agent/server"
	"github.com/podagent/podagent/logs"
	"github.com/podagent/podagent/runtime"
)

// KubeletHost is the agent as the kubelet server sees it (server.Host).
func (a *Agent) KubeletHost() server.Host { return kubeletHost{a} }

type kubeletHost struct{ a *Agent }

// Pods are the pods the agent runs: those the API bound to the node and the static ones, each
// with the status the API shows.
func (h kubeletHost) Pods(context.Context) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, p := range h.a.pods.all() {
		if !isMirror(p) {
			out = append(out, p.DeepCopy())
		}
	}
	for _, p := range h.a.static.all() {
		sp := p.DeepCopy()
		if m := h.a.mirrorOf(sp); m != nil {
			sp.Status = m.Status
		}
		out = append(out, sp)
	}
	return out, nil
}

func (h kubeletHost) ContainerID(ctx context.Context, namespace, name, container string) (string, error) {
	id, err := h.a.ExecTarget(ctx, namespace, name, container)
	if apierrors.IsBadRequest(err) {
		return "", nil // not running: the server answers as the kubelet does
	}
	return id, err
}

func (h kubeletHost) PodNetNS(ctx context.Context, namespace, name string) (string, error) {
	return h.a.PodNetNS(ctx, namespace, name)
}

func (h kubeletHost) ContainerLog(ctx context.Context, namespace, name, container string, o *corev1.PodLogOptions) (func(io.Writer) error, error) {
	opts := logs.PodLogOptions{Container: container, Previous: o.Previous}
	opts.Tail = -1
	if o.TailLines != nil {
		opts.Tail = *o.TailLines
	}
	if o.LimitBytes != nil {
		opts.LimitBytes = *o.LimitBytes
	}
	opts.Timestamps, opts.Follow = o.Timestamps, o.Follow
	switch {
	case o.SinceSeconds != nil:
		opts.Since = time.Now().Add(-time.Duration(*o.SinceSeconds) * time.Second)
	case o.SinceTime != nil:
		opts.Since = o.SinceTime.Time
	}
	return h.a.ContainerLog(ctx, namespace, name, opts)
}

func (h kubeletHost) Exec(ctx context.Context, containerID string, o server.ExecOptions) (int, error) {
	ro := runtime.ExecOptions{Cmd: o.Cmd, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, TTY: o.TTY}
	if o.Resize != nil {
		sizes := make(chan runtime.TerminalSize)
		go func() {
			defer close(sizes)
			for s := range o.Resize {
				select {
				case sizes <- runtime.TerminalSize{Width: s.Width, Height: s.Height}:
				case <-ctx.Done():
					return
				}
			}
		}()
		ro.Resize = sizes
	}
	return h.a.Exec(ctx, containerID, ro)
}

func (h kubeletHost) PortForward(ctx context.Context, netnsPath string, port int32, stream io.ReadWriteCloser) error {
	return runtime.PortForward(ctx, netnsPath, port, stream)
}

// Stats are, so far, the node's own CPU and memory, read from /proc as the kubelet's cgroup root
// figures; per-pod figures come with the metrics work.
func (h kubeletHost) Stats(context.Context) (*statsapi.Summary, error) {
	now := metav1.Now()
	node := statsapi.NodeStats{NodeName: h.a.cfg.NodeName, StartTime: now}
	if ns, ok := cpuNanoSeconds(); ok {
		node.CPU = &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: &ns}
	}
	if total, avail, ok := memInfo(); ok {
		ws := total - avail
		node.Memory = &statsapi.MemoryStats{Time: now, WorkingSetBytes: &ws, UsageBytes: &ws, AvailableBytes: &avail}
	}
	return &statsapi.Summary{Node: node, Pods: []statsapi.PodStats{}}, nil
}

func (h kubeletHost) SyncLoopHealthy() error { return nil }

// cpuNanoSeconds is the CPU time the host has spent not idle, from /proc/stat (in USER_HZ ticks,
// 100 a second on Linux).
func cpuNanoSeconds() (uint64, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	if !s.Scan() {
		return 0, false
	}
	fields := strings.Fields(s.Text())
	if len(fields) < 8 || fields[0] != "cpu" {
		return 0, false
	}
	var busy uint64
	for i, v := range fields[1:8] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, false
		}
		if i != 3 && i != 4 { // idle and iowait
			busy += n
		}
	}
	return busy * uint64(time.Second/100), true
}

// memInfo is the host's total and available memory in bytes, from /proc/meminfo.
func memInfo() (total, avail uint64, ok bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		n, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemTotal:":
			total = n * 1024
		case "MemAvailable:":
			avail = n * 1024
		}
	}
	return total, avail, total > 0
}

// KubeletHandler is the kubelet API served in-process to the embedded API, which has
// authenticated and authorized the request already (see apiserver.Kubelet).
func (a *Agent) KubeletHandler() http.Handler {
	a.kubeletHandlerOnce.Do(func() {
		s, err := server.New(server.Options{Host: a.KubeletHost(), NodeName: a.cfg.NodeName, Metrics: a.MetricsGatherer(),
			Authenticator: inProcessUser{}, Authorizer: allowAll{}})
		if err != nil {
			panic(fmt.Sprintf("kubelet handler: %v", err)) // only a missing host, authorizer or node name fails
		}
		a.kubeletHandler = s
	})
	return a.kubeletHandler
}

// inProcessUser is who the embedded API's requests come as: the API itself.
type inProcessUser struct{}

func (inProcessUser) AuthenticateRequest(*http.Request) (*server.UserInfo, bool, error) {
	return &server.UserInfo{Name: "system:apiserver", Groups: []string{"system:masters"}}, true, nil
}

type allowAll struct{}

func (allowAll) Authorize(context.Context, server.Attributes) (bool, string, error) {
	return true, "", nil
}
