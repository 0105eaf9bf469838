package validation

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func validPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kubia-manual", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "kubia", Image: "luksa/kubia",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		}}},
	}
}

func TestPod(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*corev1.Pod)
		want   []string // "field: type" of each error, in order
	}{
		{"valid", func(*corev1.Pod) {}, nil},
		{"duplicate port across containers", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b", Image: "x", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}})
		}, []string{"spec.containers[1].ports[0].containerPort: Duplicate value"}},
		{"same port, other protocol", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b", Image: "x", Ports: []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolUDP}}})
		}, nil},
		{"bad name", func(p *corev1.Pod) { p.Name = "Kubia_Manual" }, []string{"metadata.name: Invalid value"}},
		{"bad label value", func(p *corev1.Pod) { p.Labels = map[string]string{"env": "no spaces"} }, []string{"metadata.labels: Invalid value"}},
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, []string{"spec.containers: Required value"}},
		{"duplicate container name", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "kubia", Image: "x"})
		}, []string{"spec.containers[1].name: Duplicate value"}},
		{"no image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, []string{"spec.containers[0].image: Required value"}},
		{"port out of range", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 70000 }, []string{"spec.containers[0].ports[0].containerPort: Invalid value"}},
		{"bad protocol", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = "HTTP" }, []string{"spec.containers[0].ports[0].protocol: Unsupported value"}},
		{"bad restart policy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, []string{"spec.restartPolicy: Unsupported value"}},
		{"mount of undefined volume", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		}, []string{"spec.containers[0].volumeMounts[0].name: Not found"}},
		{"unsupported volume type", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}}
		}, []string{"spec.volumes[0]: Forbidden"}},
		{"probe not supported", func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe = &corev1.Probe{} }, []string{"spec.containers[0].livenessProbe: Forbidden"}},
		{"init containers not supported", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "x"}}
		}, []string{"spec.initContainers: Forbidden"}},
		{"bad nodeSelector value", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"gpu": "yes please"} }, []string{"spec.nodeSelector[gpu]: Invalid value"}},
		{"privileged", func(p *corev1.Pod) {
			yes := true
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &yes}
		}, []string{"spec.containers[0].securityContext.privileged: Forbidden"}},
		{"pod fsGroup", func(p *corev1.Pod) {
			g := int64(2000)
			p.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: &g}
		}, []string{"spec.securityContext.fsGroup: Forbidden"}},
		{"pod runAsUser is supported", func(p *corev1.Pod) {
			u := int64(1000)
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &u}
		}, nil},
		{"dnsPolicy None", func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone }, []string{"spec.dnsPolicy: Unsupported value"}},
		{"negative grace period", func(p *corev1.Pod) {
			g := int64(-1)
			p.Spec.TerminationGracePeriodSeconds = &g
		}, []string{"spec.terminationGracePeriodSeconds: Invalid value"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validPod()
			tc.mutate(p)
			errs := Pod(p)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field+": "+e.Type.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// A node admits what a cluster's apiserver adds to every pod (the service account's projected
// volume, affinity that only the scheduler reads) and refuses what podagent does not run.
func TestNodeAdmission(t *testing.T) {
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
	tests := []struct {
		name   string
		change func(*corev1.PodSpec)
		want   []string
	}{
		{"plain", func(*corev1.PodSpec) {}, nil},
		{"kube-api-access", func(s *corev1.PodSpec) {
			s.Volumes = append(s.Volumes, corev1.Volume{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}})
		}, nil},
		{"affinity", func(s *corev1.PodSpec) { s.Affinity = &corev1.Affinity{} }, nil},
		{"probe", func(s *corev1.PodSpec) { s.Containers[0].LivenessProbe = probe }, []string{"spec.containers[0].livenessProbe"}},
		{"init containers", func(s *corev1.PodSpec) { s.InitContainers = s.Containers }, []string{"spec.initContainers"}},
		{"nfs", func(s *corev1.PodSpec) {
			s.Volumes = append(s.Volumes, corev1.Volume{Name: "n", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{}}})
		}, []string{"spec.volumes[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := validPod().Spec.DeepCopy()
			spec.Volumes = nil
			tt.change(spec)
			var got []string
			for _, e := range NodeAdmission(spec) {
				got = append(got, e.Field)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("refused %v, want %v", got, tt.want)
			}
		})
	}
}
