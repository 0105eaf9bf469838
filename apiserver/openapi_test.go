package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
)

func TestOpenAPINegotiate(t *testing.T) {
	d := newOpenAPIDoc(representation{mediaTypeJSON, []byte("{}")}, representation{mediaTypeOpenAPIV2, []byte("pb")})
	for _, tc := range []struct {
		accept string
		want   int
	}{
		{"", 0},
		{"*/*", 0},
		{"application/json", 0},
		{"application/json, */*", 0},
		{mediaTypeOpenAPIV2, 1},
		{mediaTypeOpenAPIV2Deprecated + ", application/json", 1},
		{"application/json;q=0.9, " + mediaTypeOpenAPIV2, 0},
		{"application/yaml, application/*", 0},
		{"application/yaml", -1},
	} {
		if got := d.negotiate(tc.accept); got != tc.want {
			t.Errorf("negotiate(%q) = %d, want %d", tc.accept, got, tc.want)
		}
	}
}

// patchKinds are the kinds whose PATCH operation kubectl looks for to learn that the server
// validates fields, and whose schema apply computes strategic merge patches from.
var patchKinds = []struct{ kind, path string }{
	{"Pod", "/api/v1/namespaces/{namespace}/pods/{name}"},
	{"Namespace", "/api/v1/namespaces/{name}"},
	{"Node", "/api/v1/nodes/{name}"},
}

func TestOpenAPIServe(t *testing.T) {
	mux := http.NewServeMux()
	if err := registerOpenAPI(mux); err != nil {
		t.Fatal(err)
	}
	get := func(path, accept, etag string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		if etag != "" {
			r.Header.Set("If-None-Match", etag)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}

	// v2 as JSON and as protobuf carry the same document.
	w := get("/openapi/v2", "", "")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != mediaTypeJSON {
		t.Fatalf("GET /openapi/v2: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	fromJSON, err := openapiv2.ParseDocument(w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	w = get("/openapi/v2", mediaTypeOpenAPIV2Deprecated, "")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != mediaTypeOpenAPIV2 {
		t.Fatalf("GET /openapi/v2 as protobuf: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	var fromProto openapiv2.Document
	if err := proto.Unmarshal(w.Body.Bytes(), &fromProto); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(fromJSON, &fromProto) {
		t.Error("the protobuf v2 document differs from the JSON one")
	}
	for _, k := range patchKinds {
		var found bool
		for _, p := range fromProto.GetPaths().GetPath() {
			if p.GetName() != k.path {
				continue
			}
			op := p.GetValue().GetPatch()
			for _, param := range op.GetParameters() {
				q := param.GetParameter().GetNonBodyParameter().GetQueryParameterSubSchema()
				found = found || q.GetName() == "fieldValidation"
			}
			found = found && len(op.GetResponses().GetResponseCode()) > 0 &&
				slices.Contains(op.GetConsumes(), "application/strategic-merge-patch+json") &&
				slices.Contains(op.GetConsumes(), "application/apply-patch+yaml") &&
				!slices.Contains(op.GetConsumes(), "application/apply-patch+cbor")
		}
		if !found {
			t.Errorf("v2 document: no PATCH %s with fieldValidation, responses, strategic merge patch and YAML apply", k.path)
		}
	}
	var v2 map[string]any
	if err := json.Unmarshal(get("/openapi/v2", "", "").Body.Bytes(), &v2); err != nil {
		t.Fatal(err)
	}
	checkRefs(t, "v2", v2, map[string]any{"#/definitions/": v2["definitions"], "#/parameters/": v2["parameters"]})
	checkSchemas(t, "v2", v2["definitions"])

	// A client holding the current ETag is told it is still good.
	if w2 := get("/openapi/v2", mediaTypeOpenAPIV2, w.Header().Get("Etag")); w2.Code != http.StatusNotModified {
		t.Errorf("GET /openapi/v2 with If-None-Match: %d, want 304", w2.Code)
	}
	if w2 := get("/openapi/v2", "application/yaml", ""); w2.Code != http.StatusNotAcceptable {
		t.Errorf("GET /openapi/v2 as YAML: %d, want 406", w2.Code)
	}

	// v3: discovery points at the document by its hash.
	var disc struct {
		Paths map[string]struct{ ServerRelativeURL string }
	}
	if err := json.Unmarshal(get("/openapi/v3", "", "").Body.Bytes(), &disc); err != nil {
		t.Fatal(err)
	}
	url := disc.Paths["api/v1"].ServerRelativeURL
	if !strings.HasPrefix(url, "/openapi/v3/api/v1?hash=") {
		t.Fatalf("v3 discovery: api/v1 at %q", url)
	}
	w = get(url, "application/json", "")
	if w.Code != http.StatusOK || !strings.Contains(w.Header().Get("Cache-Control"), "immutable") {
		t.Fatalf("GET %s: %d, Cache-Control %q", url, w.Code, w.Header().Get("Cache-Control"))
	}
	var v3 struct {
		Paths map[string]struct {
			Patch struct {
				Parameters  []struct{ Name, In string }
				RequestBody struct{ Content map[string]any }
				GVK         map[string]string `json:"x-kubernetes-group-version-kind"`
			}
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v3); err != nil {
		t.Fatal(err)
	}
	for _, k := range patchKinds {
		op := v3.Paths[k.path].Patch
		if op.GVK["kind"] != k.kind ||
			!slices.ContainsFunc(op.Parameters, func(p struct{ Name, In string }) bool { return p.Name == "fieldValidation" }) ||
			op.RequestBody.Content["application/strategic-merge-patch+json"] == nil ||
			op.RequestBody.Content["application/apply-patch+yaml"] == nil ||
			op.RequestBody.Content["application/apply-patch+cbor"] != nil {
			t.Errorf("v3 document: PATCH %s is %+v", k.path, op)
		}
	}
	var v3doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &v3doc); err != nil {
		t.Fatal(err)
	}
	schemas := v3doc["components"].(map[string]any)["schemas"]
	checkRefs(t, "v3", v3doc, map[string]any{"#/components/schemas/": schemas})
	checkSchemas(t, "v3", schemas)
}

// checkRefs checks that every $ref in doc names an entry of the section its prefix names: that
// the generator kept the closure.
func checkRefs(t *testing.T, name string, doc map[string]any, sections map[string]any) {
	t.Helper()
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				var found bool
				for prefix, sec := range sections {
					if n, ok := strings.CutPrefix(ref, prefix); ok {
						_, found = sec.(map[string]any)[n]
					}
				}
				if !found {
					t.Errorf("%s document: dangling $ref %q", name, ref)
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
}

// checkSchemas checks that the schemas of the served kinds are the kube-apiserver's.
func checkSchemas(t *testing.T, name string, schemas any) {
	t.Helper()
	for def, desc := range map[string]string{
		"io.k8s.api.core.v1.Pod":                          "Pod is a collection of containers that can run on a host.",
		"io.k8s.api.core.v1.Namespace":                    "Namespace provides a scope for Names.",
		"io.k8s.api.core.v1.Node":                         "Node is a worker node in Kubernetes.",
		"io.k8s.api.core.v1.Event":                        "Event is a report of an event somewhere in the cluster.",
		"io.k8s.apimachinery.pkg.apis.meta.v1.Status":     "Status is a return value for calls that don't return other objects.",
		"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": "ObjectMeta is metadata that all persisted resources must have",
	} {
		s, _ := schemas.(map[string]any)[def].(map[string]any)
		if d, _ := s["description"].(string); !strings.HasPrefix(d, desc) {
			t.Errorf("%s document: %s has description %q, want %q...", name, def, d, desc)
		}
	}
}

// TestOpenAPIKubectl runs the real kubectl's `create -f` against a fake API serving the OpenAPI
// documents, and checks that it downloads them and leaves validation to the server.
func TestOpenAPIKubectl(t *testing.T) {
	const dir = "/usr/lib/google-cloud-sdk/bin"
	var minors []int
	for minor := 27; minor <= 33; minor++ {
		if _, err := os.Stat(fmt.Sprintf("%s/kubectl.1.%d", dir, minor)); err == nil {
			minors = append(minors, minor)
		}
	}
	if len(minors) == 0 {
		t.Skipf("no kubectl binaries in %s", dir)
	}

	var (
		mu      sync.Mutex
		queries []string          // of the pod creations
		fetched map[string]string // OpenAPI path -> "Accept -> status code"
	)
	mux := http.NewServeMux()
	if err := registerOpenAPI(mux); err != nil {
		t.Fatal(err)
	}
	reply := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		}
	}
	mux.HandleFunc("GET /api", reply(`{"kind":"APIVersions","versions":["v1"]}`))
	mux.HandleFunc("GET /apis", reply(`{"kind":"APIGroupList","apiVersion":"v1","groups":[]}`))
	verbs := `["create","delete","get","list","patch","update","watch"]`
	mux.HandleFunc("GET /api/v1", reply(`{"kind":"APIResourceList","groupVersion":"v1","resources":[`+
		`{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":`+verbs+`},`+
		`{"name":"namespaces","singularName":"namespace","namespaced":false,"kind":"Namespace","verbs":`+verbs+`},`+
		`{"name":"nodes","singularName":"node","namespaced":false,"kind":"Node","verbs":`+verbs+`}]}`))
	mux.HandleFunc("POST /api/v1/namespaces/default/pods", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/openapi/") {
			mux.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, r)
		mu.Lock()
		fetched[r.URL.Path] = fmt.Sprintf("%s -> %d", r.Header.Get("Accept"), rec.Code)
		mu.Unlock()
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()

	tmp := t.TempDir()
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	pod := filepath.Join(tmp, "pod.yaml")
	writeFile := func(name, content string) {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "`+srv.URL+`", insecure-skip-tls-verify: true}}]
users: [{name: test, user: {}}]
contexts: [{name: test, context: {cluster: test, user: test, namespace: default}}]
current-context: test
`)
	writeFile(pod, `apiVersion: v1
kind: Pod
metadata: {name: test}
spec:
  containers: [{name: c, image: busybox}]
`)

	for _, minor := range minors {
		v := fmt.Sprintf("1.%d", minor)
		t.Run(v, func(t *testing.T) {
			mu.Lock()
			queries, fetched = nil, map[string]string{}
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, dir+"/kubectl."+v, "--kubeconfig", kubeconfig,
				"--cache-dir", t.TempDir(), "create", "-f", pod).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "pod/test created") {
				t.Fatalf("kubectl %s create -f: %v\n%s", v, err, out)
			}
			mu.Lock()
			defer mu.Unlock()
			t.Logf("kubectl %s fetched %v", v, fetched)
			if len(queries) != 1 || !strings.Contains(queries[0], "fieldValidation=Strict") {
				t.Errorf("kubectl %s created with queries %q, want fieldValidation=Strict", v, queries)
			}
			want := map[string]string{"/openapi/v3": "200", "/openapi/v3/api/v1": "200"}
			if minor <= 28 {
				// It builds its validator from v2 first of all, whatever v3 says.
				want["/openapi/v2"] = mediaTypeOpenAPIV2Deprecated + " -> 200"
			}
			// 1.29+ fetch v2 only when v3 says the server does not validate, to validate on their own.
			if len(fetched) != len(want) {
				t.Errorf("kubectl %s fetched %v, want exactly %v", v, fetched, slices.Sorted(maps.Keys(want)))
			}
			for path, w := range want {
				if !strings.HasSuffix(fetched[path], w) {
					t.Errorf("kubectl %s fetched %s as %q, want %q", v, path, fetched[path], w)
				}
			}
		})
	}
}
