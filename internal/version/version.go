// Package version says which Kubernetes podagent follows: the API level the embedded API serves
// and the kubelet version the node reports.
package version

const (
	// KubernetesMajor and KubernetesMinor are the Kubernetes API level followed.
	KubernetesMajor = "1"
	KubernetesMinor = "33"
	// Kubelet is what the node reports as its kubelet version (and the embedded API as its
	// gitVersion): that API level, marked as podagent's.
	Kubelet = "v1.33.0-podagent"
)
