package apiserver

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/managedfields"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func testFieldManagers(t *testing.T) map[fieldManagerKey]*managedfields.FieldManager {
	t.Helper()
	c, err := newCodecs()
	if err != nil {
		t.Fatal(err)
	}
	fms, err := newFieldManagers(c.scheme)
	if err != nil {
		t.Fatal(err)
	}
	return fms
}

func applied(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{}}
	if err := utilyaml.Unmarshal([]byte(y), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

const appliedPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  containers:
  - name: c
    image: busybox
    ports: [{containerPort: 80}]
`

// The field managers merge by the schemas of the kube-apiserver: a container port without its
// protocol (a list-map key, defaulted in the v3 schemas) applies; another manager's change to an
// applied field conflicts, with the apiserver's message, unless forced.
func TestFieldManagerApply(t *testing.T) {
	fms := testFieldManagers(t)
	fm := fms[fieldManagerKey{"Pod", ""}]
	out, err := fm.Apply(&corev1.Pod{}, applied(t, appliedPod), "kubectl", false)
	if err != nil {
		t.Fatal(err)
	}
	pod := out.(*corev1.Pod)
	if pod.Labels["app"] != "web" || len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Ports[0].ContainerPort != 80 {
		t.Fatalf("applied pod: %+v", pod)
	}
	if len(pod.ManagedFields) != 1 || pod.ManagedFields[0].Manager != "kubectl" || pod.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("managedFields: %+v", pod.ManagedFields)
	}

	// A client-side label change is recorded for its manager.
	labelled := pod.DeepCopy()
	labelled.Labels["tier"] = "front"
	rec, ok := fm.UpdateNoErrors(pod, labelled, "kubectl-label").(*corev1.Pod)
	if !ok || len(rec.ManagedFields) != 2 || rec.ManagedFields[1].Manager != "kubectl-label" ||
		!strings.Contains(string(rec.ManagedFields[1].FieldsV1.Raw), `"f:tier"`) {
		t.Fatalf("managedFields after update: %+v", rec.ManagedFields)
	}

	other := applied(t, strings.Replace(appliedPod, "app: web", "app: other", 1))
	_, err = fm.Apply(rec, other, "other", false)
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `Apply failed with 1 conflict: conflict with "kubectl": .metadata.labels.app`) {
		t.Fatalf("conflicting apply: %v", err)
	}
	forced, err := fm.Apply(rec, other, "other", true)
	if err != nil || forced.(*corev1.Pod).Labels["app"] != "other" {
		t.Fatalf("forced apply: %v %+v", err, forced)
	}
}

func TestFieldManagerApplyErrors(t *testing.T) {
	fm := testFieldManagers(t)[fieldManagerKey{"Pod", ""}]
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown field", strings.Replace(appliedPod, "spec:", "spec:\n  foo: bar", 1), ".spec.foo: field not declared in schema"},
		{"other version", strings.Replace(appliedPod, "apiVersion: v1", "apiVersion: apps/v1", 1), "invalid object type: apps/v1, Kind=Pod"},
		{"other kind", strings.Replace(appliedPod, "kind: Pod", "kind: Namespace", 1), "invalid object type: /v1, Kind=Namespace"},
		{"managed fields", strings.Replace(appliedPod, "metadata:", "metadata:\n  managedFields: [{manager: x}]", 1), "metadata.managedFields must be nil"},
	} {
		_, err := fm.Apply(&corev1.Pod{}, applied(t, tc.body), "kubectl", false)
		err = applyError(err)
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want BadRequest %q", tc.name, err, tc.want)
		}
	}
}

func TestManagerOrUserAgent(t *testing.T) {
	for _, tc := range []struct{ manager, ua, want string }{
		{"kubectl-create", "kubectl/v1.33.0 (linux/amd64) kubernetes/abc", "kubectl-create"},
		{"", "kubectl/v1.33.0 (linux/amd64) kubernetes/abc", "kubectl"},
		{"", "curl", "curl"},
		{"", "a\x00b/1", "ab"},
		{"", strings.Repeat("x", 200), strings.Repeat("x", 128)},
		{"", "", ""},
	} {
		if got := managerOrUserAgent(tc.manager, tc.ua); got != tc.want {
			t.Errorf("managerOrUserAgent(%q, %q) = %q, want %q", tc.manager, tc.ua, got, tc.want)
		}
	}
}
