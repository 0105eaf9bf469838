package runtime_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/runtime"
)

// The sandbox hash changes with what the sandbox is made from (pod-level spec, hostPorts) and not
// with what only containers use.
func TestSandboxHash(t *testing.T) {
	base := func() *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "busybox", Ports: []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		}}}}
	}
	withHostPort := func(port int32) *corev1.Pod {
		p := base()
		p.Spec.Containers[0].Ports[0].HostPort = port
		return p
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		same bool
	}{
		{"another image", func() *corev1.Pod { p := base(); p.Spec.Containers[0].Image = "kubia"; return p }(), true},
		{"another container port", func() *corev1.Pod { p := base(); p.Spec.Containers[0].Ports[0].ContainerPort = 9090; return p }(), true},
		{"another restart policy", func() *corev1.Pod { p := base(); p.Spec.RestartPolicy = corev1.RestartPolicyNever; return p }(), true},
		{"a hostPort", withHostPort(8888), false},
		{"another hostname", func() *corev1.Pod { p := base(); p.Spec.Hostname = "h"; return p }(), false},
	}
	want := runtime.SandboxHash(base())
	for _, tt := range tests {
		if got := runtime.SandboxHash(tt.pod); (got == want) != tt.same {
			t.Errorf("%s: hash %s vs %s, same=%v want %v", tt.name, got, want, got == want, tt.same)
		}
	}
	if runtime.SandboxHash(withHostPort(8888)) == runtime.SandboxHash(withHostPort(8889)) {
		t.Error("a changed hostPort keeps the sandbox hash")
	}
}
