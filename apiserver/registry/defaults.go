// Package registry holds what the kube-apiserver does to a pod or namespace between a request and
// the store: defaults, validation, graceful deletion. The API, the static pod sources and the
// agent's own controllers all go through it, so an object is the same whichever way it came.
package registry

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/podagent/podagent/runtime"
)

// Kubernetes' defaults for a pod, from k8s.io/kubernetes/pkg/apis/core/v1/defaults.go and the
// admission plugins a default cluster runs (DefaultTolerationSeconds).
const (
	defaultTerminationGracePeriod = 30
	defaultSchedulerName          = "default-scheduler"
	defaultTerminationMessagePath = "/dev/termination-log"
	defaultTolerationSeconds      = 300
)

// SetPodDefaults fills the fields that the kube-apiserver fills when a pod is created, so that
// what `kubectl get pod -o yaml` shows, and what the agent hashes, is the same for every source.
func SetPodDefaults(pod *corev1.Pod) {
	if pod.Namespace == "" {
		pod.Namespace = corev1.NamespaceDefault
	}
	s := &pod.Spec
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = corev1.DNSClusterFirst
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptr.To[int64](defaultTerminationGracePeriod)
	}
	if s.SchedulerName == "" {
		s.SchedulerName = defaultSchedulerName
	}
	if s.SecurityContext == nil {
		s.SecurityContext = &corev1.PodSecurityContext{}
	}
	if s.EnableServiceLinks == nil {
		s.EnableServiceLinks = ptr.To(true)
	}
	if s.Priority == nil {
		s.Priority = ptr.To[int32](0)
	}
	if s.PreemptionPolicy == nil {
		s.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
	}
	for i := range s.Volumes {
		if ed := s.Volumes[i].EmptyDir; ed != nil && ed.Medium == "" {
			ed.Medium = corev1.StorageMediumDefault
		}
		if hp := s.Volumes[i].HostPath; hp != nil && hp.Type == nil {
			hp.Type = ptr.To(corev1.HostPathUnset)
		}
	}
	for i := range s.InitContainers {
		setContainerDefaults(&s.InitContainers[i])
	}
	for i := range s.Containers {
		setContainerDefaults(&s.Containers[i])
	}
	setDefaultTolerations(s)
}

func setContainerDefaults(c *corev1.Container) {
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = defaultTerminationMessagePath
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = runtime.DefaultPullPolicy(c.Image)
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for i := range c.Env {
		if fr := c.Env[i].ValueFrom; fr != nil && fr.FieldRef != nil && fr.FieldRef.APIVersion == "" {
			fr.FieldRef.APIVersion = "v1"
		}
	}
}

// setDefaultTolerations adds what the DefaultTolerationSeconds admission plugin adds: tolerate a
// not-ready or unreachable node for five minutes.
func setDefaultTolerations(s *corev1.PodSpec) {
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable} {
		has := false
		for _, t := range s.Tolerations {
			if (t.Key == key || t.Key == "") && (t.Effect == corev1.TaintEffectNoExecute || t.Effect == "") {
				has = true
			}
		}
		if !has {
			s.Tolerations = append(s.Tolerations, corev1.Toleration{
				Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
				TolerationSeconds: ptr.To[int64](defaultTolerationSeconds),
			})
		}
	}
}
