package agent

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// unschedulableMessage is the scheduler's message for a one-node cluster whose node does not match
// a pod's nodeSelector.
const unschedulableMessage = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. " +
	"preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."

// fitsNode reports whether pod may run on node: its nodeSelector is satisfied by the node's labels.
// (Affinity is refused by validation, so the selector is all there is to check.)
func fitsNode(pod *corev1.Pod, node *corev1.Node) bool {
	if node == nil {
		return false
	}
	return labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(node.Labels))
}
