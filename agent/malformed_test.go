package agent_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"math/rand"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// apiClient is an HTTPS client of the agent's API with the admin kubeconfig's credentials.
type apiClient struct {
	server string
	http   *http.Client
}

func newAPIClient(t *testing.T, kubeconfig string) *apiClient {
	t.Helper()
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server                   string `json:"server"`
				CertificateAuthorityData []byte `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				ClientCertificateData []byte `json:"client-certificate-data"`
				ClientKeyData         []byte `json:"client-key-data"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil || len(cfg.Clusters) != 1 || len(cfg.Users) != 1 {
		t.Fatalf("kubeconfig: %v\n%s", err, data)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cfg.Clusters[0].Cluster.CertificateAuthorityData)
	cert, err := tls.X509KeyPair(cfg.Users[0].User.ClientCertificateData, cfg.Users[0].User.ClientKeyData)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiClient{server: cfg.Clusters[0].Cluster.Server, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (c *apiClient) do(t *testing.T, method, path, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.server+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// state is what a rejected request must not change: every pod and namespace, resourceVersions
// included.
func (c *apiClient) state(t *testing.T) string {
	t.Helper()
	var out []string
	for _, path := range []string{"/api/v1/pods", "/api/v1/namespaces"} {
		code, body := c.do(t, http.MethodGet, path, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		for _, item := range list.Items {
			out = append(out, string(item))
		}
	}
	return strings.Join(out, "\n")
}

type malformedCase struct {
	name         string
	method, path string
	ctype        string
	body         string
	code         int
	reason       metav1.StatusReason
	// cause is a field the 422's details.causes must name.
	cause string
}

// TestAPIMalformedRequests sends the API what a careless or hostile client might, and checks that
// each gets the kube-apiserver's Status (code, reason, and for 422 the field), and that nothing
// stored changes.
func TestAPIMalformedRequests(t *testing.T) {
	ta := startAgent(t, "node")
	c := newAPIClient(t, serveAPI(t, ta))

	const ns = "fuzz"
	pods := "/api/v1/namespaces/" + ns + "/pods"
	pod := pods + "/bound"
	mustDo := func(method, path, body string, want int) []byte {
		t.Helper()
		code, out := c.do(t, method, path, "application/json", []byte(body))
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, out, want)
		}
		return out
	}
	mustDo(http.MethodPost, "/api/v1/namespaces", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"fuzz","labels":{"a":"b"}}}`, http.StatusCreated)
	// Bound to another node: this agent never runs it, so nothing changes it behind the test.
	out := mustDo(http.MethodPost, pods, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bound","labels":{"app":"x"}},
		"spec":{"nodeName":"elsewhere","containers":[{"name":"c","image":"busybox"}]}}`, http.StatusCreated)
	var bound corev1.Pod
	if err := json.Unmarshal(out, &bound); err != nil {
		t.Fatal(err)
	}
	podJSON := func(edit func(p *corev1.Pod)) string {
		p := bound.DeepCopy()
		edit(p)
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	newPod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"new"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`
	huge := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"huge","annotations":{"a":"` + strings.Repeat("x", 4<<20) + `"}}}`

	before := c.state(t)
	const (
		merge = "application/merge-patch+json"
		smp   = "application/strategic-merge-patch+json"
		jp    = "application/json-patch+json"
		js    = "application/json"
		apply = "application/apply-patch+yaml"
	)
	// The pod as applied: a change to its spec is refused, as any pod update's.
	applyPod := `apiVersion: v1
kind: Pod
metadata:
  name: bound
  namespace: fuzz
  labels:
    app: x
spec:
  nodeName: elsewhere
  containers:
  - name: c
    image: busybox
`
	tests := []malformedCase{
		// Create: bodies.
		{name: "create bad json", method: "POST", path: pods, ctype: js, body: `{"kind":`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create empty body", method: "POST", path: pods, ctype: js, body: ``, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create json array", method: "POST", path: pods, ctype: js, body: `[1,2]`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create yaml as json", method: "POST", path: pods, ctype: js, body: "apiVersion: v1\nkind: Pod\n", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create bad yaml", method: "POST", path: pods, ctype: "application/yaml", body: "kind: [\n", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create bad protobuf", method: "POST", path: pods, ctype: "application/vnd.kubernetes.protobuf", body: "k8s\x00\x0a\x05garbage", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create unknown media type", method: "POST", path: pods, ctype: "text/plain", body: newPod, code: 415, reason: metav1.StatusReasonUnsupportedMediaType},
		{name: "create kind mismatch", method: "POST", path: pods, ctype: js, body: `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"new"}}`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create status kind", method: "POST", path: pods, ctype: js, body: `{"apiVersion":"v1","kind":"Status"}`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create unknown kind", method: "POST", path: pods, ctype: js, body: `{"apiVersion":"v1","kind":"Foo","metadata":{"name":"new"}}`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create wrong group", method: "POST", path: pods, ctype: js, body: strings.Replace(newPod, `"v1"`, `"apps/v1"`, 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create wrong version", method: "POST", path: pods, ctype: js, body: strings.Replace(newPod, `"v1"`, `"v2"`, 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create namespace mismatch", method: "POST", path: pods, ctype: js, body: strings.Replace(newPod, `"name":"new"`, `"name":"new","namespace":"default"`, 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create no metadata", method: "POST", path: pods, ctype: js, body: `{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"c","image":"busybox"}]}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.name"},
		{name: "create bad name", method: "POST", path: pods, ctype: js, body: strings.Replace(newPod, `"new"`, `"Bad_Name"`, 1), code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.name"},
		{name: "create bad container name", method: "POST", path: pods, ctype: js, body: strings.Replace(newPod, `"name":"c"`, `"name":"C!"`, 1), code: 422, reason: metav1.StatusReasonInvalid, cause: "spec.containers[0].name"},
		{name: "create number as string", method: "POST", path: pods, ctype: js, body: strings.Replace(newPod, `"spec":{`, `"spec":{"terminationGracePeriodSeconds":"ten",`, 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create huge", method: "POST", path: pods, ctype: js, body: huge, code: 413, reason: metav1.StatusReasonRequestEntityTooLarge},
		{name: "create exists", method: "POST", path: pods, ctype: js, body: strings.Replace(newPod, `"new"`, `"bound"`, 1), code: 409, reason: metav1.StatusReasonAlreadyExists},
		{name: "create in missing namespace", method: "POST", path: "/api/v1/namespaces/nope/pods", ctype: js, body: newPod, code: 404, reason: metav1.StatusReasonNotFound},
		{name: "create strict unknown field", method: "POST", path: pods + "?fieldValidation=Strict", ctype: js, body: strings.Replace(newPod, `"spec":{`, `"spec":{"bogus":1,`, 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create strict duplicate field", method: "POST", path: pods + "?fieldValidation=Strict", ctype: js, body: strings.Replace(newPod, `"kind":"Pod",`, `"kind":"Pod","kind":"Pod",`, 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create bad fieldValidation", method: "POST", path: pods + "?fieldValidation=Loose", ctype: js, body: newPod, code: 422, reason: metav1.StatusReasonInvalid, cause: "fieldValidation"},
		{name: "create bad dryRun", method: "POST", path: pods + "?dryRun=Maybe", ctype: js, body: newPod, code: 422, reason: metav1.StatusReasonInvalid, cause: "dryRun"},
		{name: "create namespace of kind Pod", method: "POST", path: "/api/v1/namespaces", ctype: js, body: newPod, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "create namespace bad name", method: "POST", path: "/api/v1/namespaces", ctype: js, body: `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a.b"}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.name"},
		{name: "create on item", method: "POST", path: pod, ctype: js, body: newPod, code: 405, reason: metav1.StatusReasonMethodNotAllowed},

		// Update.
		{name: "put bad json", method: "PUT", path: pod, ctype: js, body: `{"metadata":`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "put kind mismatch", method: "PUT", path: pod, ctype: js, body: `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bound"}}`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "put name mismatch", method: "PUT", path: pod, ctype: js, body: podJSON(func(p *corev1.Pod) { p.Name = "other" }), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "put no name", method: "PUT", path: pod, ctype: js, body: podJSON(func(p *corev1.Pod) { p.Name = "" }), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "put namespace mismatch", method: "PUT", path: pod, ctype: js, body: podJSON(func(p *corev1.Pod) { p.Namespace = "default" }), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "put wrong uid", method: "PUT", path: pod, ctype: js, body: podJSON(func(p *corev1.Pod) {
			p.UID = "d1a8d5a3-0000-0000-0000-000000000000"
			p.Labels = map[string]string{"x": "y"}
		}), code: 409, reason: metav1.StatusReasonConflict},
		{name: "put stale resourceVersion", method: "PUT", path: pod, ctype: js, body: podJSON(func(p *corev1.Pod) { p.ResourceVersion = "1"; p.Labels = map[string]string{"x": "y"} }), code: 409, reason: metav1.StatusReasonConflict},
		{name: "put container name", method: "PUT", path: pod, ctype: js, body: podJSON(func(p *corev1.Pod) { p.Spec.Containers[0].Name = "d" }), code: 422, reason: metav1.StatusReasonInvalid, cause: "spec"},
		{name: "put nodeName", method: "PUT", path: pod, ctype: js, body: podJSON(func(p *corev1.Pod) { p.Spec.NodeName = "node" }), code: 422, reason: metav1.StatusReasonInvalid, cause: "spec"},
		{name: "put deletionTimestamp", method: "PUT", path: pod, ctype: js, body: podJSON(func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: time.Now()} }), code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.deletionTimestamp"},
		{name: "put bad label", method: "PUT", path: pod, ctype: js, body: podJSON(func(p *corev1.Pod) { p.Labels = map[string]string{"bad key!": "v"} }), code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.labels"},
		{name: "put bad dryRun", method: "PUT", path: pod + "?dryRun=true", ctype: js, body: podJSON(func(p *corev1.Pod) {}), code: 422, reason: metav1.StatusReasonInvalid, cause: "dryRun"},
		{name: "put dry run", method: "PUT", path: pod + "?dryRun=All", ctype: js, body: podJSON(func(p *corev1.Pod) { p.Labels = map[string]string{"dry": "run"} }), code: 200},
		{name: "put missing", method: "PUT", path: pods + "/missing", ctype: js, body: strings.Replace(newPod, `"new"`, `"missing"`, 1), code: 404, reason: metav1.StatusReasonNotFound},
		{name: "put huge", method: "PUT", path: pod, ctype: js, body: huge, code: 413, reason: metav1.StatusReasonRequestEntityTooLarge},
		{name: "put collection", method: "PUT", path: pods, ctype: js, body: newPod, code: 405, reason: metav1.StatusReasonMethodNotAllowed},
		{name: "put namespace bad label", method: "PUT", path: "/api/v1/namespaces/fuzz", ctype: js, body: `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"fuzz","labels":{"-bad":"x"}}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.labels"},
		{name: "put namespace name mismatch", method: "PUT", path: "/api/v1/namespaces/fuzz", ctype: js, body: `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"other"}}`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "put status bad json", method: "PUT", path: pod + "/status", ctype: js, body: `{`, code: 400, reason: metav1.StatusReasonBadRequest},

		// Patch, of each type.
		{name: "merge bad json", method: "PATCH", path: pod, ctype: merge, body: `{"metadata":`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "merge name", method: "PATCH", path: pod, ctype: merge, body: `{"metadata":{"name":"other"}}`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "merge namespace", method: "PATCH", path: pod, ctype: merge, body: `{"metadata":{"namespace":"default"}}`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "merge uid", method: "PATCH", path: pod, ctype: merge, body: `{"metadata":{"uid":"d1a8d5a3-0000-0000-0000-000000000000"}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.uid"},
		{name: "merge kind", method: "PATCH", path: pod, ctype: merge, body: `{"kind":"Namespace"}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "patch"},
		{name: "merge wrong type", method: "PATCH", path: pod, ctype: merge, body: `{"spec":{"containers":"c"}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "patch"},
		{name: "merge nodeName", method: "PATCH", path: pod, ctype: merge, body: `{"spec":{"nodeName":"node"}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "spec"},
		{name: "merge stale resourceVersion", method: "PATCH", path: pod, ctype: merge, body: `{"metadata":{"resourceVersion":"1","labels":{"x":"y"}}}`, code: 409, reason: metav1.StatusReasonConflict},
		{name: "merge bad label", method: "PATCH", path: pod, ctype: merge, body: `{"metadata":{"labels":{"bad key":"x"}}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.labels"},
		{name: "merge force", method: "PATCH", path: pod + "?force=true", ctype: merge, body: `{}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "force"},
		{name: "merge bad fieldValidation", method: "PATCH", path: pod + "?fieldValidation=x", ctype: merge, body: `{}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "fieldValidation"},
		{name: "merge strict unknown field", method: "PATCH", path: pod + "?fieldValidation=Strict", ctype: merge, body: `{"spec":{"bogus":1}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "patch"},
		{name: "merge dry run", method: "PATCH", path: pod + "?dryRun=All", ctype: merge, body: `{"metadata":{"labels":{"dry":"run"}}}`, code: 200},
		{name: "merge missing", method: "PATCH", path: pods + "/missing", ctype: merge, body: `{}`, code: 404, reason: metav1.StatusReasonNotFound},
		{name: "merge huge", method: "PATCH", path: pod, ctype: merge, body: huge, code: 413, reason: metav1.StatusReasonRequestEntityTooLarge},
		{name: "merge namespace uid", method: "PATCH", path: "/api/v1/namespaces/fuzz", ctype: merge, body: `{"metadata":{"uid":"d1a8d5a3-0000-0000-0000-000000000000"}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.uid"},
		{name: "merge node bad label", method: "PATCH", path: "/api/v1/nodes/node", ctype: merge, body: `{"metadata":{"labels":{"bad key":"x"}}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.labels"},
		{name: "merge node podCIDR", method: "PATCH", path: "/api/v1/nodes/node", ctype: merge, body: `{"spec":{"podCIDR":"10.0.0.0/24"}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "spec"},
		{name: "merge node bad taint", method: "PATCH", path: "/api/v1/nodes/node", ctype: merge, body: `{"spec":{"taints":[{"key":"k","effect":"Sometimes"}]}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "spec.taints[0].effect"},
		{name: "merge status bad json", method: "PATCH", path: pod + "/status", ctype: merge, body: `[`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "strategic bad json", method: "PATCH", path: pod, ctype: smp, body: `{"spec":`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "strategic not an object", method: "PATCH", path: pod, ctype: smp, body: `[1]`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "strategic bad directive", method: "PATCH", path: pod, ctype: smp, body: `{"spec":{"$patch":"bogus"}}`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "strategic nodeName", method: "PATCH", path: pod, ctype: smp, body: `{"spec":{"nodeName":"node"}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "spec"},
		{name: "strategic container name", method: "PATCH", path: pod, ctype: smp, body: `{"spec":{"containers":[{"name":"d","image":"busybox"}]}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "spec"},
		{name: "strategic uid", method: "PATCH", path: pod, ctype: smp, body: `{"metadata":{"uid":"x"}}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.uid"},
		{name: "json patch not a list", method: "PATCH", path: pod, ctype: jp, body: `{"op":"add"}`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "json patch bad json", method: "PATCH", path: pod, ctype: jp, body: `[{"op":`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "json patch remove missing", method: "PATCH", path: pod, ctype: jp, body: `[{"op":"remove","path":"/metadata/nothing"}]`, code: 422, reason: metav1.StatusReasonInvalid},
		{name: "json patch test fails", method: "PATCH", path: pod, ctype: jp, body: `[{"op":"test","path":"/metadata/name","value":"x"}]`, code: 422, reason: metav1.StatusReasonInvalid},
		{name: "json patch unknown op", method: "PATCH", path: pod, ctype: jp, body: `[{"op":"frob","path":"/metadata/name"}]`, code: 422, reason: metav1.StatusReasonInvalid},
		{name: "json patch uid", method: "PATCH", path: pod, ctype: jp, body: `[{"op":"replace","path":"/metadata/uid","value":"x"}]`, code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.uid"},
		{name: "json patch container name", method: "PATCH", path: pod, ctype: jp, body: `[{"op":"replace","path":"/spec/containers/0/name","value":"d"}]`, code: 422, reason: metav1.StatusReasonInvalid, cause: "spec"},
		{name: "json patch name", method: "PATCH", path: pod, ctype: jp, body: `[{"op":"replace","path":"/metadata/name","value":"d"}]`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "json patch remove metadata", method: "PATCH", path: pod, ctype: jp, body: `[{"op":"remove","path":"/metadata"}]`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "json patch wrong type", method: "PATCH", path: pod, ctype: jp, body: `[{"op":"replace","path":"/spec/containers","value":7}]`, code: 422, reason: metav1.StatusReasonInvalid, cause: "patch"},
		{name: "apply not yaml", method: "PATCH", path: pod + "?fieldManager=test", ctype: apply, body: "kind: [", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "apply no fieldManager", method: "PATCH", path: pod, ctype: apply, body: applyPod, code: 422, reason: metav1.StatusReasonInvalid, cause: "fieldManager"},
		{name: "apply other version", method: "PATCH", path: pod + "?fieldManager=test", ctype: apply, body: strings.Replace(applyPod, "apiVersion: v1", "apiVersion: apps/v1", 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "apply other kind", method: "PATCH", path: pod + "?fieldManager=test", ctype: apply, body: strings.Replace(applyPod, "kind: Pod", "kind: Namespace", 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "apply unknown field", method: "PATCH", path: pod + "?fieldManager=test&fieldValidation=Strict", ctype: apply, body: strings.Replace(applyPod, "spec:", "spec:\n  foo: bar", 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "apply duplicate field", method: "PATCH", path: pod + "?fieldManager=test&fieldValidation=Strict", ctype: apply, body: strings.Replace(applyPod, "labels:", "labels: {a: b}\n  labels:", 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "apply managedFields", method: "PATCH", path: pod + "?fieldManager=test", ctype: apply, body: strings.Replace(applyPod, "metadata:", "metadata:\n  managedFields: [{manager: x}]", 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "apply other name", method: "PATCH", path: pod + "?fieldManager=test", ctype: apply, body: strings.Replace(applyPod, "name: bound", "name: other", 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "apply other namespace", method: "PATCH", path: pod + "?fieldManager=test", ctype: apply, body: strings.Replace(applyPod, "namespace: fuzz", "namespace: default", 1), code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "apply spec change", method: "PATCH", path: pod + "?fieldManager=test", ctype: apply, body: strings.Replace(applyPod, "image: busybox", "image: busybox\n    command: [sh]", 1), code: 422, reason: metav1.StatusReasonInvalid, cause: "spec"},
		{name: "apply dry run", method: "PATCH", path: pod + "?fieldManager=test&dryRun=All&force=true", ctype: apply, body: strings.Replace(applyPod, "app: x", "app: z", 1), code: 200},
		{name: "apply create dry run", method: "PATCH", path: pods + "/new?fieldManager=test&dryRun=All", ctype: apply, body: strings.Replace(applyPod, "name: bound", "name: new", 1), code: 201},
		{name: "apply create invalid", method: "PATCH", path: pods + "/new?fieldManager=test", ctype: apply, body: strings.Replace(strings.Replace(applyPod, "name: bound", "name: new", 1), "image: busybox", "image: ''", 1), code: 422, reason: metav1.StatusReasonInvalid},
		{name: "apply create in missing namespace", method: "PATCH", path: "/api/v1/namespaces/nope/pods/bound?fieldManager=test", ctype: apply, body: strings.Replace(applyPod, "namespace: fuzz", "namespace: nope", 1), code: 404, reason: metav1.StatusReasonNotFound},
		{name: "apply status of missing", method: "PATCH", path: pods + "/new/status?fieldManager=test", ctype: apply, body: strings.Replace(applyPod, "name: bound", "name: new", 1), code: 404, reason: metav1.StatusReasonNotFound},
		{name: "apply mirror pod", method: "PATCH", path: pods + "/new?fieldManager=test", ctype: apply, body: strings.Replace(strings.Replace(applyPod, "name: bound", "name: new", 1), "labels:", "annotations: {kubernetes.io/config.mirror: x}\n  labels:", 1), code: 403, reason: metav1.StatusReasonForbidden},
		{name: "apply cbor", method: "PATCH", path: pod + "?fieldManager=test", ctype: "application/apply-patch+cbor", body: "\xa0", code: 415, reason: metav1.StatusReasonUnsupportedMediaType},
		{name: "apply node spec", method: "PATCH", path: "/api/v1/nodes/node?fieldManager=test&force=true", ctype: apply, body: "apiVersion: v1\nkind: Node\nmetadata: {name: node}\nspec: {podCIDR: 10.9.0.0/24}\n", code: 422, reason: metav1.StatusReasonInvalid, cause: "spec"},
		{name: "patch unknown type", method: "PATCH", path: pod, ctype: "text/plain", body: `{}`, code: 415, reason: metav1.StatusReasonUnsupportedMediaType},
		{name: "patch no type", method: "PATCH", path: pod, ctype: "", body: `{}`, code: 415, reason: metav1.StatusReasonUnsupportedMediaType},
		{name: "patch collection", method: "PATCH", path: pods, ctype: merge, body: `{}`, code: 405, reason: metav1.StatusReasonMethodNotAllowed},

		// Delete.
		{name: "delete bad body", method: "DELETE", path: pod, ctype: js, body: `{bad`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "delete body of another kind", method: "DELETE", path: pod, ctype: js, body: `{"apiVersion":"v1","kind":"Pod"}`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "delete bad grace in body", method: "DELETE", path: pod, ctype: js, body: `{"gracePeriodSeconds":"soon"}`, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "delete bad propagation in body", method: "DELETE", path: pod, ctype: js, body: `{"propagationPolicy":"Sideways"}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "propagationPolicy"},
		{name: "delete bad dryRun in body", method: "DELETE", path: pod, ctype: js, body: `{"dryRun":["Maybe"]}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "dryRun"},
		{name: "delete bad grace", method: "DELETE", path: pod + "?gracePeriodSeconds=soon", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "delete bad propagation", method: "DELETE", path: pod + "?propagationPolicy=Sideways", code: 422, reason: metav1.StatusReasonInvalid, cause: "propagationPolicy"},
		{name: "delete orphan and propagation", method: "DELETE", path: pod + "?propagationPolicy=Orphan&orphanDependents=true", code: 422, reason: metav1.StatusReasonInvalid, cause: "propagationPolicy"},
		{name: "delete bad dryRun", method: "DELETE", path: pod + "?dryRun=Maybe", code: 422, reason: metav1.StatusReasonInvalid, cause: "dryRun"},
		{name: "delete uid precondition", method: "DELETE", path: pod, ctype: js, body: `{"preconditions":{"uid":"d1a8d5a3-0000-0000-0000-000000000000"}}`, code: 409, reason: metav1.StatusReasonConflict},
		{name: "delete rv precondition", method: "DELETE", path: pod, ctype: js, body: `{"preconditions":{"resourceVersion":"1"}}`, code: 409, reason: metav1.StatusReasonConflict},
		{name: "delete namespace rv precondition", method: "DELETE", path: "/api/v1/namespaces/fuzz", ctype: js, body: `{"preconditions":{"resourceVersion":"1"}}`, code: 409, reason: metav1.StatusReasonConflict},
		{name: "delete dry run", method: "DELETE", path: pod + "?dryRun=All", code: 200},
		{name: "delete namespace dry run", method: "DELETE", path: "/api/v1/namespaces/fuzz?dryRun=All", code: 200},
		{name: "delete default namespace", method: "DELETE", path: "/api/v1/namespaces/default", code: 403, reason: metav1.StatusReasonForbidden},
		{name: "delete missing", method: "DELETE", path: pods + "/missing", code: 404, reason: metav1.StatusReasonNotFound},
		{name: "delete huge body", method: "DELETE", path: pod, ctype: js, body: `{"kind":"DeleteOptions","x":"` + strings.Repeat("x", 4<<20) + `"}`, code: 413, reason: metav1.StatusReasonRequestEntityTooLarge},
		{name: "delete collection bad selector", method: "DELETE", path: pods + "?labelSelector=app+in+(", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "delete collection bad field", method: "DELETE", path: pods + "?fieldSelector=spec.bogus%3Dx", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "delete collection dry run", method: "DELETE", path: pods + "?dryRun=All", code: 200},
		{name: "delete node status", method: "DELETE", path: "/api/v1/nodes/node/status", code: 405, reason: metav1.StatusReasonMethodNotAllowed},

		// List and watch.
		{name: "list bad label selector", method: "GET", path: pods + "?labelSelector=app+in+(", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "list bad label value", method: "GET", path: pods + "?labelSelector=app%3D%21%21", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "list bad field selector", method: "GET", path: pods + "?fieldSelector=a%3D%3D%3Db", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "list unsupported field", method: "GET", path: pods + "?fieldSelector=spec.bogus%3Dx", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "list bad limit", method: "GET", path: pods + "?limit=ten", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "list bad resourceVersion", method: "GET", path: pods + "?resourceVersion=abc", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "list bad resourceVersionMatch", method: "GET", path: pods + "?resourceVersion=1&resourceVersionMatch=Bogus", code: 422, reason: metav1.StatusReasonInvalid, cause: "resourceVersionMatch"},
		{name: "list match without rv", method: "GET", path: pods + "?resourceVersionMatch=Exact", code: 422, reason: metav1.StatusReasonInvalid, cause: "resourceVersionMatch"},
		{name: "watch bad timeout", method: "GET", path: pods + "?watch=true&timeoutSeconds=soon", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "watch bad resourceVersion", method: "GET", path: pods + "?watch=true&resourceVersion=abc", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "get missing", method: "GET", path: pods + "/missing", code: 404, reason: metav1.StatusReasonNotFound},
		{name: "get in missing namespace", method: "GET", path: "/api/v1/namespaces/nope/pods/bound", code: 404, reason: metav1.StatusReasonNotFound},

		// Logs.
		{name: "log negative tail", method: "GET", path: pod + "/log?tailLines=-1", code: 422, reason: metav1.StatusReasonInvalid, cause: "tailLines"},
		{name: "log bad tail", method: "GET", path: pod + "/log?tailLines=ten", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "log zero limitBytes", method: "GET", path: pod + "/log?limitBytes=0", code: 422, reason: metav1.StatusReasonInvalid, cause: "limitBytes"},
		{name: "log zero sinceSeconds", method: "GET", path: pod + "/log?sinceSeconds=0", code: 422, reason: metav1.StatusReasonInvalid, cause: "sinceSeconds"},
		{name: "log bad sinceSeconds", method: "GET", path: pod + "/log?sinceSeconds=x", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "log bad sinceTime", method: "GET", path: pod + "/log?sinceTime=yesterday", code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "log since both", method: "GET", path: pod + "/log?sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z", code: 422, reason: metav1.StatusReasonInvalid},
		{name: "log put", method: "PUT", path: pod + "/log", ctype: js, body: `{}`, code: 405, reason: metav1.StatusReasonMethodNotAllowed},

		// Routes.
		{name: "unknown subresource", method: "GET", path: pod + "/bogus", code: 404, reason: metav1.StatusReasonNotFound},
		{name: "unknown resource", method: "GET", path: "/api/v1/namespaces/fuzz/bogus", code: 404, reason: metav1.StatusReasonNotFound},
		{name: "unknown group", method: "GET", path: "/apis/apps/v1/namespaces/fuzz/deployments", code: 404, reason: metav1.StatusReasonNotFound},
		{name: "post nameless event", method: "POST", path: "/api/v1/namespaces/fuzz/events", ctype: js, body: `{}`, code: 422, reason: metav1.StatusReasonInvalid, cause: "metadata.name"},
		{name: "post status", method: "POST", path: pod + "/status", ctype: js, body: `{}`, code: 405, reason: metav1.StatusReasonMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := c.do(t, tc.method, tc.path, tc.ctype, []byte(tc.body))
			if code != tc.code {
				t.Errorf("code %d, want %d: %.500s", code, tc.code, body)
			}
			if tc.code >= 400 {
				checkStatus(t, code, body, tc.reason, tc.cause)
			}
			if after := c.state(t); after != before {
				t.Fatalf("the request changed the stored state:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// checkStatus checks that body is a Failure Status with code, reason and, if cause is set, a
// cause naming that field.
func checkStatus(t *testing.T, code int, body []byte, reason metav1.StatusReason, cause string) {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("answer is not a Status: %v: %.500s", err, body)
	}
	if st.Kind != "Status" || st.APIVersion != "v1" || st.Status != metav1.StatusFailure || int(st.Code) != code {
		t.Errorf("answer %d is not a Failure Status with that code: %.500s", code, body)
	}
	if reason != "" && st.Reason != reason {
		t.Errorf("reason %q, want %q: %s", st.Reason, reason, st.Message)
	}
	if cause == "" {
		return
	}
	var fields []string
	if st.Details != nil {
		for _, c := range st.Details.Causes {
			fields = append(fields, c.Field)
			if c.Field == cause {
				return
			}
		}
	}
	t.Errorf("no cause names %q (causes %v): %s", cause, fields, st.Message)
}

// TestAPIFuzzBodies sends random bytes and truncated JSON to the create, update and patch
// endpoints: every answer must be a 4xx Status, and nothing stored may change.
func TestAPIFuzzBodies(t *testing.T) {
	ta := startAgent(t, "node")
	c := newAPIClient(t, serveAPI(t, ta))
	pods := "/api/v1/namespaces/default/pods"
	code, out := c.do(t, http.MethodPost, pods, "application/json", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bound"},
		"spec":{"nodeName":"elsewhere","containers":[{"name":"c","image":"busybox:1.35"}]}}`))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, out)
	}
	var bound corev1.Pod
	if err := json.Unmarshal(out, &bound); err != nil {
		t.Fatal(err)
	}
	bound.Spec.Containers[0].Image = "busybox:1.36"
	bound.Labels = map[string]string{"a": "b"}
	valid, _ := json.Marshal(bound)
	patches := map[string]string{
		"application/merge-patch+json":           `{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}`,
		"application/strategic-merge-patch+json": `{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}`,
		"application/json-patch+json":            `[{"op":"add","path":"/metadata/labels","value":{"a":"b"}},{"op":"replace","path":"/spec/containers/0/image","value":"busybox:1.36"}]`,
	}
	before := c.state(t)
	rng := rand.New(rand.NewSource(1))
	check := func(method, path, ctype string, body []byte) {
		t.Helper()
		code, out := c.do(t, method, path, ctype, body)
		if code < 400 || code >= 500 {
			t.Fatalf("%s %s (%s) %q: %d %.300s, want a 4xx", method, path, ctype, body, code, out)
		}
		var st metav1.Status
		if err := json.Unmarshal(out, &st); err != nil || st.Kind != "Status" || int(st.Code) != code {
			t.Fatalf("%s %s (%s) %q: answer %d is not a Status: %.300s", method, path, ctype, body, code, out)
		}
	}
	for i := 0; i < 60; i++ {
		random := make([]byte, rng.Intn(200))
		rng.Read(random)
		cut := func(s []byte) []byte { return s[:rng.Intn(len(s))] }
		for _, ctype := range []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"} {
			check(http.MethodPost, pods, ctype, random)
			check(http.MethodPut, pods+"/bound", ctype, random)
		}
		check(http.MethodPost, pods, "application/json", cut(valid))
		check(http.MethodPut, pods+"/bound", "application/json", cut(valid))
		for ctype, p := range patches {
			check(http.MethodPatch, pods+"/bound", ctype, random)
			check(http.MethodPatch, pods+"/bound", ctype, []byte(p)[:rng.Intn(len(p))])
		}
		check(http.MethodDelete, pods+"/bound", "application/json", append([]byte(`{`), random...))
	}
	if after := c.state(t); after != before {
		t.Fatalf("the requests changed the stored state:\nbefore %s\nafter  %s", before, after)
	}
	// The valid forms, last, do apply: the loop's failures were the bodies'.
	for ctype, p := range patches {
		if code, out := c.do(t, http.MethodPatch, pods+"/bound", ctype, []byte(p)); code != http.StatusOK {
			t.Errorf("%s: %d %s", ctype, code, out)
		}
	}
	if code, out := c.do(t, http.MethodGet, pods+"/bound", "", nil); code != http.StatusOK || !strings.Contains(string(out), "busybox:1.36") {
		t.Errorf("get: %d %s", code, out)
	}
}
