package source

import (
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/internal/keys"
)

func TestDecodePods(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []string // namespace/name of the pods, in document order
		wantErr string
	}{
		{"yaml", podManifest("a", "busybox"), []string{"default/a-node"}, ""},
		{"json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"kube-system"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`, []string{"kube-system/j-node"}, ""},
		{"multi-document with comments", "# leading\n---\n" + podManifest("a", "x") + "---\n# only a comment\n---\n" + podManifest("b", "x"), []string{"default/a-node", "default/b-node"}, ""},
		{"empty", "", nil, ""},
		{"only comments", "# nothing here\n", nil, ""},
		{"unknown field", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: x, bogusField: 1}]}\n", nil, `unknown field "bogusField"`},
		{"field spelled with another case", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, Image: x}]}\n", nil, `unknown field "spec.containers[0].Image"`},
		{"duplicate field", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nmetadata: {name: b}\nspec: {containers: [{name: c, image: x}]}\n", nil, `key "metadata" already set`},
		{"wrong kind", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", nil, `apiVersion "v1" kind "Namespace": only v1 Pod`},
		{"wrong apiVersion", "apiVersion: v2\nkind: Pod\nmetadata: {name: a}\n", nil, "only v1 Pod"},
		{"no name", "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, image: x}]}\n", nil, "metadata.name is required"},
		{"bad second document rejects all", podManifest("a", "x") + "---\napiVersion: v1\nkind: Pod\nmetadata: [\n", nil, "document 1 of /m/f.yaml"},
		{"malformed", "apiVersion: v1\nkind: Pod\nmetadata: [\n", nil, "document 0 of /m/f.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pods, err := decodePods([]byte(tc.in), SourceFile, "/m/f.yaml", "node")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if pods != nil {
					t.Fatalf("pods = %d, want none with an error", len(pods))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range pods {
				names = append(names, p.Namespace+"/"+p.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("pods %v, want %v", names, tc.want)
			}
		})
	}
}

func TestStaticPodFields(t *testing.T) {
	for _, kind := range []string{SourceFile, SourceHTTP} {
		t.Run(kind, func(t *testing.T) {
			in := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  annotations: {keep: me}\nspec:\n  containers: [{name: c, image: x}]\n  tolerations: [{key: k, operator: Exists}]\n"
			pods, err := decodePods([]byte(in), kind, "origin", "node1")
			if err != nil {
				t.Fatal(err)
			}
			p := pods[0]
			if p.Name != "a-node1" || p.Namespace != "default" || p.Spec.NodeName != "node1" {
				t.Errorf("name %q namespace %q nodeName %q", p.Name, p.Namespace, p.Spec.NodeName)
			}
			if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(string(p.UID)) {
				t.Errorf("uid %q is not 32 hex digits", p.UID)
			}
			if got := p.Annotations[keys.ConfigSourceAnnotation]; got != kind {
				t.Errorf("config.source %q, want %q", got, kind)
			}
			if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.Annotations[keys.ConfigHashAnnotation]) {
				t.Errorf("config.hash %q is not a sha256", p.Annotations[keys.ConfigHashAnnotation])
			}
			if p.Annotations["keep"] != "me" {
				t.Errorf("the manifest's own annotations were lost: %v", p.Annotations)
			}
			want := []corev1.Toleration{
				{Key: "k", Operator: corev1.TolerationOpExists},
				{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
			}
			if len(p.Spec.Tolerations) != len(want) || p.Spec.Tolerations[0] != want[0] || p.Spec.Tolerations[1] != want[1] {
				t.Errorf("tolerations %+v, want %+v", p.Spec.Tolerations, want)
			}
		})
	}
}

// decodeOne decodes a manifest holding one pod.
func decodeOne(t *testing.T, doc, kind, node string) *corev1.Pod {
	t.Helper()
	pods, err := decodePods([]byte(doc), kind, "origin", node)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 1 {
		t.Fatalf("%d pods, want 1", len(pods))
	}
	return pods[0]
}

func TestPodUIDStableAcrossEditsUniquePerPod(t *testing.T) {
	const doc = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: ns}\nspec: {containers: [{name: c, image: x}]}\n"
	base := decodeOne(t, doc, SourceFile, "n").UID
	cases := []struct {
		name     string
		doc      string
		kind     string
		node     string
		sameUID  bool
		sameHash bool
	}{
		{"same manifest", doc, SourceFile, "n", true, true},
		{"reformatted, with a comment", "# web\napiVersion: v1\nkind: Pod\nmetadata:\n  namespace: ns\n  name: a\nspec:\n  containers:\n  - image: x\n    name: c\n", SourceFile, "n", true, true},
		{"image edited", strings.Replace(doc, "image: x", "image: y", 1), SourceFile, "n", true, false},
		{"label added", strings.Replace(doc, "namespace: ns}", "namespace: ns, labels: {a: b}}", 1), SourceFile, "n", true, false},
		{"other name", strings.Replace(doc, "name: a", "name: b", 1), SourceFile, "n", false, false},
		{"other namespace", strings.Replace(doc, "namespace: ns", "namespace: other", 1), SourceFile, "n", false, false},
		{"other node", doc, SourceFile, "m", false, true},
		{"other source", doc, SourceHTTP, "n", false, true},
		// The separators keep the fields apart: namespace "n" with name "sa" is not "ns" with "a".
		{"name/namespace boundary", "apiVersion: v1\nkind: Pod\nmetadata: {name: sa, namespace: n}\nspec: {containers: [{name: c, image: x}]}\n", SourceFile, "n", false, false},
	}
	baseHash := decodeOne(t, doc, SourceFile, "n").Annotations[keys.ConfigHashAnnotation]
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := decodeOne(t, tc.doc, tc.kind, tc.node)
			if got := p.UID == base; got != tc.sameUID {
				t.Errorf("same UID = %v, want %v (%s vs %s)", got, tc.sameUID, p.UID, base)
			}
			// The hash is of the manifest's pod only: node and source change the UID, not it.
			if got := p.Annotations[keys.ConfigHashAnnotation] == baseHash; got != tc.sameHash {
				t.Errorf("same config.hash = %v, want %v", got, tc.sameHash)
			}
		})
	}
}
