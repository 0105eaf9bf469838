package agent

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/podagent/podagent/internal/version"
)

// maxPods is the node's pod capacity, the kubelet's default.
const maxPods = 110

// hostFacts are what the node object says about the host.
type hostFacts struct {
	Hostname        string
	InternalIP      string
	CPUs            int
	MemoryBytes     int64
	StorageBytes    int64
	MachineID       string
	SystemUUID      string
	BootID          string
	KernelVersion   string
	OSImage         string
	RuntimeVersion  string
	OperatingSystem string
	Architecture    string
	// KubeletPort is where the kubelet API listens (node mode), 0 if it does not.
	KubeletPort int32
}

// readHostFacts reads the host's facts; a fact that cannot be read stays empty, as the kubelet
// leaves it.
func readHostFacts(ctx context.Context, rootDir, runtimeVersion, nodeIP string) hostFacts {
	f := hostFacts{
		CPUs: goruntime.NumCPU(), OperatingSystem: goruntime.GOOS, Architecture: goruntime.GOARCH,
		RuntimeVersion: "containerd://" + runtimeVersion,
	}
	f.Hostname, _ = os.Hostname()
	f.InternalIP = primaryIPv4()
	if nodeIP != "" {
		f.InternalIP = nodeIP
	}
	f.MemoryBytes = memTotalBytes()
	var st unix.Statfs_t
	if unix.Statfs(rootDir, &st) == nil {
		f.StorageBytes = int64(st.Blocks) * st.Bsize
	}
	f.MachineID = readTrimmed("/etc/machine-id")
	f.SystemUUID = readTrimmed("/sys/class/dmi/id/product_uuid")
	f.BootID = readTrimmed("/proc/sys/kernel/random/boot_id")
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		f.KernelVersion = unix.ByteSliceToString(u.Release[:])
	}
	f.OSImage = osPrettyName()
	return f
}

// nodeObject is the node as the agent reports it. labels are the user's labels (from the stored
// node and --node-labels); the kubelet's well-known labels are added on top.
func nodeObject(name, podCIDR string, labels map[string]string, f hostFacts, now time.Time) *corev1.Node {
	l := maps.Clone(labels)
	if l == nil {
		l = map[string]string{}
	}
	l[corev1.LabelHostname] = name
	l[corev1.LabelOSStable] = f.OperatingSystem
	l[corev1.LabelArchStable] = f.Architecture
	l["beta.kubernetes.io/os"] = f.OperatingSystem
	l["beta.kubernetes.io/arch"] = f.Architecture
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(f.CPUs), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(f.MemoryBytes, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(maxPods, resource.DecimalSI),
	}
	if f.StorageBytes > 0 {
		capacity[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(f.StorageBytes, resource.BinarySI)
	}
	addrs := []corev1.NodeAddress{}
	if f.InternalIP != "" {
		addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: f.InternalIP})
	}
	addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	t := metav1.NewTime(now.Truncate(time.Second))
	cond := func(typ corev1.NodeConditionType, status corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastHeartbeatTime: t, LastTransitionTime: t}
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity.DeepCopy(),
			Phase:       "",
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
			},
			Addresses: addrs,
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: f.MachineID, SystemUUID: f.SystemUUID, BootID: f.BootID,
				KernelVersion: f.KernelVersion, OSImage: f.OSImage,
				ContainerRuntimeVersion: f.RuntimeVersion, KubeletVersion: version.Kubelet,
				OperatingSystem: f.OperatingSystem, Architecture: f.Architecture,
			},
		},
	}
	if podCIDR != "" {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = podCIDR, []string{podCIDR}
	}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = f.KubeletPort
	return n
}

// registerNode creates the node's object, or brings an existing one up to date while keeping the
// labels users gave it (`kubectl label node`), as a restarted kubelet does.
func (a *Agent) registerNode(ctx context.Context, facts hostFacts) (*corev1.Node, error) {
	nodes := a.client.CoreV1().Nodes()
	name := a.cfg.NodeName
	// In a cluster the pod CIDR is the cluster's to give (spec.podCIDR), not the node's to claim,
	// as the kubelet's --pod-cidr is for standalone use only.
	ownCIDR := a.cfg.PodCIDR
	if a.cfg.Kubeconfig != "" {
		ownCIDR = ""
	}
	old, err := nodes.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// Status is a subresource: a kube-apiserver drops it on create, and it is written below,
		// as on an existing node.
		old, err = nodes.Create(ctx, nodeObject(name, ownCIDR, a.cfg.NodeLabels, facts, time.Now()), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			old, err = nodes.Get(ctx, name, metav1.GetOptions{})
		}
		if err != nil {
			return nil, fmt.Errorf("register node %s: %w", name, err)
		}
		old.Status.Conditions = nil // none reported yet: every transition time is now
	}
	if err != nil {
		return nil, fmt.Errorf("read node %s: %w", name, err)
	}
	var updated *corev1.Node
	attempt := 0
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if attempt++; attempt > 1 { // a conflict: read again
			prev := old.Status.Conditions
			if old, err = nodes.Get(ctx, name, metav1.GetOptions{}); err != nil {
				return err
			}
			if prev == nil {
				old.Status.Conditions = nil
			}
		}
		labels := maps.Clone(old.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, a.cfg.NodeLabels)
		podCIDR := old.Spec.PodCIDR
		if podCIDR == "" {
			podCIDR = ownCIDR
		}
		n := nodeObject(name, podCIDR, labels, facts, time.Now())
		next := old.DeepCopy()
		next.Labels = n.Labels
		next.Spec.PodCIDR, next.Spec.PodCIDRs = n.Spec.PodCIDR, n.Spec.PodCIDRs
		if updated, err = nodes.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			return err
		}
		keepNodeTransitionTimes(old.Status.Conditions, n.Status.Conditions)
		updated.Status = n.Status
		updated, err = nodes.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update node %s: %w", name, err)
	}
	return updated, nil
}

// primaryIPv4 is the address of the interface that holds the default route, found by asking the
// kernel which source address it would use (no packet is sent), else the first global IPv4.
func primaryIPv4() string {
	if c, err := net.Dial("udp4", "192.0.2.1:9"); err == nil {
		defer c.Close()
		if a, ok := c.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsLoopback() {
			return a.IP.String()
		}
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func osPrettyName() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func memTotalBytes() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
