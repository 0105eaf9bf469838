package runtime

import (
	"fmt"
	"strconv"
)

// Container labels. Identity uses the kubelet's keys, so tools that know them read ours; the rest
// is podagent's own. A restarted agent finds everything it runs through these labels alone.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
	LabelGracePeriod   = "io.kubernetes.pod.terminationGracePeriod"

	LabelKind         = "io.podagent.kind"
	LabelSandboxID    = "io.podagent.sandbox-id"
	LabelRestartCount = "io.podagent.restart-count"
	LabelSpecHash     = "io.podagent.container-hash"
	LabelPodIP        = "io.podagent.pod-ip"
	LabelSandboxHash  = "io.podagent.sandbox-hash"
	LabelBackOff      = "io.podagent.backoff"

	KindSandbox   = "sandbox"
	KindContainer = "container"
)

// PodRef names a pod.
type PodRef struct {
	Namespace, Name, UID string
}

func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

func (p PodRef) labels(kind string) map[string]string {
	return map[string]string{
		LabelPodName:      p.Name,
		LabelPodNamespace: p.Namespace,
		LabelPodUID:       p.UID,
		LabelKind:         kind,
	}
}

func podRefFromLabels(l map[string]string) PodRef {
	return PodRef{Namespace: l[LabelPodNamespace], Name: l[LabelPodName], UID: l[LabelPodUID]}
}

func restartCountFromLabels(l map[string]string) (int, error) {
	s, ok := l[LabelRestartCount]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("label %s=%q: %w", LabelRestartCount, s, err)
	}
	return n, nil
}
