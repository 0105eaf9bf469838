// Package validation checks Pods the way the kube-apiserver does, and rejects what podagent cannot
// honour, so that no field is ever silently ignored. Errors carry the field path
// (spec.containers[1].ports[0].containerPort) in apimachinery's field.ErrorList.
package validation

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Pod validates pod's metadata and spec.
func Pod(pod *corev1.Pod) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMeta(&pod.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	allErrs = append(allErrs, PodSpec(&pod.Spec, field.NewPath("spec"))...)
	return allErrs
}

// PodSpec validates a pod spec: what Kubernetes requires of it, and that it asks for nothing
// podagent does not implement.
func PodSpec(spec *corev1.PodSpec, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	volumes, errs := podVolumes(spec.Volumes, path.Child("volumes"))
	allErrs = append(allErrs, errs...)
	allErrs = append(allErrs, unsupportedPodFields(spec, path)...)

	if len(spec.Containers) == 0 {
		allErrs = append(allErrs, field.Required(path.Child("containers"), ""))
	}
	names := sets.New[string]()
	for i := range spec.Containers {
		c := &spec.Containers[i]
		cPath := path.Child("containers").Index(i)
		if names.Has(c.Name) {
			allErrs = append(allErrs, field.Duplicate(cPath.Child("name"), c.Name))
		}
		names.Insert(c.Name)
		allErrs = append(allErrs, container(c, volumes, cPath)...)
	}
	allErrs = append(allErrs, uniquePorts(spec.Containers, path.Child("containers"))...)

	switch spec.RestartPolicy {
	case "", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		allErrs = append(allErrs, field.NotSupported(path.Child("restartPolicy"), spec.RestartPolicy,
			[]corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	}
	if g := spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		allErrs = append(allErrs, field.Invalid(path.Child("terminationGracePeriodSeconds"), *g, "must be >= 0"))
	}
	if spec.Hostname != "" {
		for _, msg := range validation.IsDNS1123Label(spec.Hostname) {
			allErrs = append(allErrs, field.Invalid(path.Child("hostname"), spec.Hostname, msg))
		}
	}
	for k, v := range spec.NodeSelector {
		p := path.Child("nodeSelector").Key(k)
		for _, msg := range validation.IsQualifiedName(k) {
			allErrs = append(allErrs, field.Invalid(p, k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			allErrs = append(allErrs, field.Invalid(p, v, msg))
		}
	}
	return allErrs
}

func container(c *corev1.Container, volumes sets.Set[string], path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if c.Name == "" {
		allErrs = append(allErrs, field.Required(path.Child("name"), ""))
	} else {
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			allErrs = append(allErrs, field.Invalid(path.Child("name"), c.Name, msg))
		}
	}
	if c.Image == "" {
		allErrs = append(allErrs, field.Required(path.Child("image"), ""))
	}
	for i, p := range c.Ports {
		pp := path.Child("ports").Index(i)
		for _, msg := range validation.IsValidPortNum(int(p.ContainerPort)) {
			allErrs = append(allErrs, field.Invalid(pp.Child("containerPort"), p.ContainerPort, msg))
		}
		if p.HostPort != 0 {
			for _, msg := range validation.IsValidPortNum(int(p.HostPort)) {
				allErrs = append(allErrs, field.Invalid(pp.Child("hostPort"), p.HostPort, msg))
			}
		}
		switch p.Protocol {
		case "", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			allErrs = append(allErrs, field.NotSupported(pp.Child("protocol"), p.Protocol,
				[]corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP}))
		}
		if p.Name != "" {
			for _, msg := range validation.IsValidPortName(p.Name) {
				allErrs = append(allErrs, field.Invalid(pp.Child("name"), p.Name, msg))
			}
		}
	}
	for i, e := range c.Env {
		ep := path.Child("env").Index(i)
		if e.Name == "" {
			allErrs = append(allErrs, field.Required(ep.Child("name"), ""))
		}
		if e.ValueFrom != nil {
			allErrs = append(allErrs, field.Forbidden(ep.Child("valueFrom"), notSupported))
		}
	}
	if len(c.EnvFrom) > 0 {
		allErrs = append(allErrs, field.Forbidden(path.Child("envFrom"), notSupported))
	}
	mountPaths := sets.New[string]()
	for i, m := range c.VolumeMounts {
		mp := path.Child("volumeMounts").Index(i)
		if !volumes.Has(m.Name) {
			allErrs = append(allErrs, field.NotFound(mp.Child("name"), m.Name))
		}
		if m.MountPath == "" {
			allErrs = append(allErrs, field.Required(mp.Child("mountPath"), ""))
		} else if mountPaths.Has(m.MountPath) {
			allErrs = append(allErrs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique"))
		}
		mountPaths.Insert(m.MountPath)
		if m.SubPath != "" || m.SubPathExpr != "" {
			allErrs = append(allErrs, field.Forbidden(mp.Child("subPath"), notSupported))
		}
	}
	allErrs = append(allErrs, unsupportedContainerFields(c, path)...)
	return allErrs
}

// uniquePorts rejects two ports with the same number and protocol anywhere in the pod: the
// containers share one network namespace, so the second could never bind.
func uniquePorts(containers []corev1.Container, path *field.Path) field.ErrorList {
	type key struct {
		port  int32
		proto corev1.Protocol
	}
	seen := map[key]string{}
	var allErrs field.ErrorList
	for i, c := range containers {
		for j, p := range c.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			k := key{p.ContainerPort, proto}
			pp := path.Index(i).Child("ports").Index(j).Child("containerPort")
			if first, ok := seen[k]; ok {
				allErrs = append(allErrs, field.Duplicate(pp,
					fmt.Sprintf("%d/%s (already declared at %s: containers of a pod share one network namespace)", p.ContainerPort, proto, first)))
				continue
			}
			seen[k] = pp.String()
		}
	}
	return allErrs
}

func podVolumes(vols []corev1.Volume, path *field.Path) (sets.Set[string], field.ErrorList) {
	var allErrs field.ErrorList
	names := sets.New[string]()
	for i, v := range vols {
		vp := path.Index(i)
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			allErrs = append(allErrs, field.Invalid(vp.Child("name"), v.Name, msg))
		}
		if names.Has(v.Name) {
			allErrs = append(allErrs, field.Duplicate(vp.Child("name"), v.Name))
		}
		names.Insert(v.Name)
		switch {
		case v.EmptyDir != nil:
			if v.EmptyDir.Medium != corev1.StorageMediumDefault && v.EmptyDir.Medium != corev1.StorageMediumMemory {
				allErrs = append(allErrs, field.NotSupported(vp.Child("emptyDir", "medium"), v.EmptyDir.Medium, []string{"", "Memory"}))
			}
		case v.HostPath != nil:
			if v.HostPath.Path == "" {
				allErrs = append(allErrs, field.Required(vp.Child("hostPath", "path"), ""))
			}
		default:
			allErrs = append(allErrs, field.Forbidden(vp, "only emptyDir and hostPath volumes are supported by podagent"))
		}
	}
	return names, allErrs
}
