package runtime

import (
	corev1 "k8s.io/api/core/v1"
)

// QOSClass computes a pod's quality-of-service class as the kubelet does: Guaranteed when every
// container limits CPU and memory with requests equal to limits, BestEffort when nothing is
// requested or limited, Burstable otherwise.
func QOSClass(pod *corev1.Pod) corev1.PodQOSClass {
	anything := false
	guaranteed := true
	for _, c := range pod.Spec.Containers {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[name]
			lim, hasLim := c.Resources.Limits[name]
			if (hasReq && !req.IsZero()) || (hasLim && !lim.IsZero()) {
				anything = true
			}
			if !hasLim || lim.IsZero() || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !anything:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	default:
		return corev1.PodQOSBurstable
	}
}

// OOM scores the kubelet gives (pkg/kubelet/qos/policy.go).
const (
	sandboxOOMScoreAdj    = -998
	guaranteedOOMScoreAdj = -997
	besteffortOOMScoreAdj = 1000
)

// oomScoreAdj is the kubelet's oom_score_adj for a container of pod: by QoS class, and for
// Burstable pods the larger the memory request against the machine's memory, the lower.
func oomScoreAdj(pod *corev1.Pod, c *corev1.Container, memoryCapacity int64) int {
	switch QOSClass(pod) {
	case corev1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case corev1.PodQOSBestEffort:
		return besteffortOOMScoreAdj
	}
	if memoryCapacity <= 0 {
		return besteffortOOMScoreAdj - 1
	}
	req := c.Resources.Requests.Memory().Value()
	adj := 1000 - (1000*req)/memoryCapacity
	if adj < 2 {
		return 2
	}
	if adj >= besteffortOOMScoreAdj {
		return besteffortOOMScoreAdj - 1
	}
	return int(adj)
}

// cpuShares converts a CPU request to cgroup v1 shares, as the kubelet's MilliCPUToShares.
func cpuShares(milli int64) uint64 {
	const minShares, sharesPerCPU = 2, 1024
	if milli == 0 {
		return minShares
	}
	s := milli * sharesPerCPU / 1000
	if s < minShares {
		return minShares
	}
	return uint64(s)
}

// cfsPeriod is the kubelet's CFS period (100ms); a CPU limit becomes a quota within it.
const cfsPeriod = 100000

func cpuQuota(milli int64) int64 {
	const minQuota = 1000
	q := milli * cfsPeriod / 1000
	if q < minQuota {
		return minQuota
	}
	return q
}
