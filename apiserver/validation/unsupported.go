package validation

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

const notSupported = "not supported by podagent"

// unsupportedPodFields rejects pod-level fields podagent does not implement. Accepting them and
// running the pod without them would silently change what the user asked for.
func unsupportedPodFields(spec *corev1.PodSpec, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	forbid := forbidder(&allErrs, path)
	forbid(len(spec.InitContainers) > 0, "initContainers")
	forbid(len(spec.EphemeralContainers) > 0, "ephemeralContainers")
	forbid(spec.HostNetwork, "hostNetwork")
	forbid(spec.HostPID, "hostPID")
	forbid(spec.HostIPC, "hostIPC")
	forbid(spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace, "shareProcessNamespace")
	forbid(spec.Affinity != nil, "affinity")
	forbid(spec.RuntimeClassName != nil, "runtimeClassName")
	forbid(len(spec.ImagePullSecrets) > 0, "imagePullSecrets")
	forbid(len(spec.ReadinessGates) > 0, "readinessGates")
	forbid(len(spec.ResourceClaims) > 0, "resourceClaims")
	forbid(spec.Resources != nil, "resources")
	forbid(spec.OS != nil && spec.OS.Name != corev1.Linux, "os")
	forbid(spec.ActiveDeadlineSeconds != nil, "activeDeadlineSeconds")
	forbid(spec.DNSConfig != nil, "dnsConfig")
	forbid(spec.HostUsers != nil && !*spec.HostUsers, "hostUsers")
	forbid(spec.SetHostnameAsFQDN != nil && *spec.SetHostnameAsFQDN, "setHostnameAsFQDN")
	if spec.DNSPolicy == corev1.DNSNone {
		allErrs = append(allErrs, field.NotSupported(path.Child("dnsPolicy"), spec.DNSPolicy,
			[]corev1.DNSPolicy{corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault}))
	}
	if sc := spec.SecurityContext; sc != nil {
		forbidSC := forbidder(&allErrs, path.Child("securityContext"))
		forbidSC(sc.SELinuxOptions != nil, "seLinuxOptions")
		forbidSC(sc.WindowsOptions != nil, "windowsOptions")
		forbidSC(sc.RunAsNonRoot != nil, "runAsNonRoot")
		forbidSC(sc.FSGroup != nil, "fsGroup")
		forbidSC(sc.FSGroupChangePolicy != nil, "fsGroupChangePolicy")
		forbidSC(len(sc.Sysctls) > 0, "sysctls")
		forbidSC(sc.SeccompProfile != nil, "seccompProfile")
		forbidSC(sc.AppArmorProfile != nil, "appArmorProfile")
		forbidSC(sc.SupplementalGroupsPolicy != nil, "supplementalGroupsPolicy")
		forbidSC(sc.SELinuxChangePolicy != nil, "seLinuxChangePolicy")
	}
	return allErrs
}

// unsupportedContainerFields rejects container fields podagent does not implement yet.
func unsupportedContainerFields(c *corev1.Container, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	forbid := forbidder(&allErrs, path)
	forbid(c.LivenessProbe != nil, "livenessProbe")
	forbid(c.ReadinessProbe != nil, "readinessProbe")
	forbid(c.StartupProbe != nil, "startupProbe")
	forbid(c.Lifecycle != nil, "lifecycle")
	forbid(len(c.VolumeDevices) > 0, "volumeDevices")
	forbid(c.Stdin || c.StdinOnce, "stdin")
	forbid(c.TTY, "tty")
	forbid(len(c.ResizePolicy) > 0, "resizePolicy")
	forbid(c.RestartPolicy != nil, "restartPolicy")
	if sc := c.SecurityContext; sc != nil {
		forbidSC := forbidder(&allErrs, path.Child("securityContext"))
		forbidSC(sc.Capabilities != nil, "capabilities")
		forbidSC(sc.Privileged != nil && *sc.Privileged, "privileged")
		forbidSC(sc.SELinuxOptions != nil, "seLinuxOptions")
		forbidSC(sc.WindowsOptions != nil, "windowsOptions")
		forbidSC(sc.SeccompProfile != nil, "seccompProfile")
		forbidSC(sc.AppArmorProfile != nil, "appArmorProfile")
		forbidSC(sc.ProcMount != nil, "procMount")
		forbidSC(sc.AllowPrivilegeEscalation != nil, "allowPrivilegeEscalation")
		forbidSC(sc.RunAsNonRoot != nil, "runAsNonRoot")
	}
	return allErrs
}

// forbidder returns a function that records a Forbidden error at path.name when set is true.
func forbidder(errs *field.ErrorList, path *field.Path) func(set bool, name string) {
	return func(set bool, name string) {
		if set {
			*errs = append(*errs, field.Forbidden(path.Child(name), notSupported))
		}
	}
}

// NodeAdmission is what a node refuses of a pod bound to it, as the kubelet's admission refuses a
// pod it cannot run: the fields podagent does not implement, so that such a pod fails with the
// reason instead of running without them. Fields that only the scheduler acts on (affinity) are
// the cluster's business and pass; the volume kinds the agent writes from the cluster's objects
// (projected, configMap, secret, downwardAPI) pass too.
func NodeAdmission(spec *corev1.PodSpec) field.ErrorList {
	path := field.NewPath("spec")
	var allErrs field.ErrorList
	for _, e := range unsupportedPodFields(spec, path) {
		if e.Field != path.Child("affinity").String() {
			allErrs = append(allErrs, e)
		}
	}
	for i := range spec.Containers {
		allErrs = append(allErrs, unsupportedContainerFields(&spec.Containers[i], path.Child("containers").Index(i))...)
	}
	for i, v := range spec.Volumes {
		switch {
		case v.EmptyDir != nil, v.HostPath != nil, v.Projected != nil, v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil:
		default:
			allErrs = append(allErrs, field.Forbidden(path.Child("volumes").Index(i), notSupported))
		}
	}
	return allErrs
}
