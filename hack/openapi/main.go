// Command openapi extracts from the kube-apiserver's published OpenAPI documents the part that
// describes what podagent serves, for apiserver to embed: the operations of the paths it routes,
// and the schemas of Pod, Namespace, Node, Event, their lists and meta/v1, with every definition
// they reference. `kubectl explain` then prints what it prints against a real cluster, and
// `kubectl apply` computes its strategic merge patches from the same schemas.
//
// The documents are api/openapi-spec/swagger.json (v2) and api/openapi-spec/v3/api__v1_openapi.json
// (v3) of the k8s.io/kubernetes release matching go.mod's k8s.io/api (v0.37.2 is v1.37.2), fetched
// through the Go module proxy (`go mod download`, which the module cache may already answer). The
// output is compact JSON, gzipped. Run from apiserver with `go generate` (or `make openapi`):
//
//	go run ../../hack/openapi -out openapi
//
// -spec names a directory holding the two files instead (still of that release).
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// served lists podagent's routes (apiserver/rest.go, api.go, exec.go) as the kube-apiserver's
// paths and their methods; a path's item keeps only these operations and its shared parameters.
var served = map[string][]string{
	"/api/v1/pods":                                           {"get"},
	"/api/v1/namespaces/{namespace}/pods":                    {"get", "post", "delete"},
	"/api/v1/namespaces/{namespace}/pods/{name}":             {"get", "put", "patch", "delete"},
	"/api/v1/namespaces/{namespace}/pods/{name}/status":      {"get", "put", "patch"},
	"/api/v1/namespaces/{namespace}/pods/{name}/log":         {"get"},
	"/api/v1/namespaces/{namespace}/pods/{name}/exec":        {"get", "post"},
	"/api/v1/namespaces/{namespace}/pods/{name}/portforward": {"get", "post"},
	"/api/v1/namespaces":                                     {"get", "post"},
	"/api/v1/namespaces/{name}":                              {"get", "put", "patch", "delete"},
	"/api/v1/namespaces/{name}/status":                       {"get", "put", "patch"},
	"/api/v1/nodes":                                          {"get"},
	"/api/v1/nodes/{name}":                                   {"get", "put", "patch"},
	"/api/v1/nodes/{name}/status":                            {"get", "put", "patch"},
	"/api/v1/events":                                         {"get"},
	"/api/v1/namespaces/{namespace}/events":                  {"get"},
	"/api/v1/namespaces/{namespace}/events/{name}":           {"get"},
}

// rootSchemas are the definitions kept besides those the operations reference: the kinds
// podagent serves and their lists, whether or not a path names them. Every meta/v1 definition is
// kept too.
var rootSchemas = []string{
	"io.k8s.api.core.v1.Pod", "io.k8s.api.core.v1.PodList",
	"io.k8s.api.core.v1.Namespace", "io.k8s.api.core.v1.NamespaceList",
	"io.k8s.api.core.v1.Node", "io.k8s.api.core.v1.NodeList",
	"io.k8s.api.core.v1.Event", "io.k8s.api.core.v1.EventList",
}

const metaV1 = "io.k8s.apimachinery.pkg.apis.meta.v1."

// applyPatch are the media types of server-side apply that podagent does not accept: dropped
// from what the PATCH operations consume. It applies YAML (application/apply-patch+yaml) only, as
// a kube-apiserver without the CBOR feature.
var applyPatch = []string{"application/apply-patch+cbor"}

func main() {
	spec := flag.String("spec", "", "directory holding swagger.json and v3/api__v1_openapi.json (default: from the k8s.io/kubernetes module matching go.mod's k8s.io/api)")
	out := flag.String("out", "openapi", "directory to write v2.json.gz and v3.json.gz to")
	flag.Parse()
	log.SetFlags(0)
	version, err := kubeVersion()
	if err != nil {
		log.Fatal(err)
	}
	if *spec == "" {
		if *spec, err = specFromModule(version); err != nil {
			log.Fatal(err)
		}
	}
	v2, err := extractV2(filepath.Join(*spec, "swagger.json"), version)
	if err != nil {
		log.Fatal(err)
	}
	v3, err := extractV3(filepath.Join(*spec, "v3", "api__v1_openapi.json"), version)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	for name, doc := range map[string]map[string]any{"v2.json": v2, "v3.json": v3} {
		if err := write(filepath.Join(*out, name), doc); err != nil {
			log.Fatal(err)
		}
	}
}

// kubeVersion returns the Kubernetes release of go.mod's k8s.io/api: v0.37.2 is v1.37.2.
func kubeVersion() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find go.mod: %w", err)
	}
	data, err := os.ReadFile(strings.TrimSpace(string(gomod)))
	if err != nil {
		return "", fmt.Errorf("read go.mod: %w", err)
	}
	m := regexp.MustCompile(`(?m)^\s*k8s\.io/api v0\.(\d+\.\d+)`).FindSubmatch(data)
	if m == nil {
		return "", fmt.Errorf("no k8s.io/api v0.x.y in %s", strings.TrimSpace(string(gomod)))
	}
	return "v1." + string(m[1]), nil
}

// specFromModule returns the openapi-spec directory of k8s.io/kubernetes at version, downloading
// the module into the module cache if it is not there.
func specFromModule(version string) (string, error) {
	// go mod download needs a module to run in: a scratch one, so that go.mod here is untouched.
	tmp, err := os.MkdirTemp("", "openapi-gen")
	if err != nil {
		return "", fmt.Errorf("make a scratch module: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte("module scratch\n"), 0o644); err != nil {
		return "", fmt.Errorf("make a scratch module: %w", err)
	}
	cmd := exec.Command("go", "mod", "download", "-json", "k8s.io/kubernetes@"+version)
	cmd.Dir, cmd.Stderr = tmp, os.Stderr
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	js, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("download k8s.io/kubernetes@%s: %w", version, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(js, &mod); err != nil {
		return "", fmt.Errorf("read go mod download's answer for k8s.io/kubernetes@%s: %w", version, err)
	}
	if mod.Dir == "" {
		return "", fmt.Errorf("download k8s.io/kubernetes@%s: %s", version, mod.Error)
	}
	return filepath.Join(mod.Dir, "api", "openapi-spec"), nil
}

func extractV2(path, version string) (map[string]any, error) {
	doc, err := readJSON(path)
	if err != nil {
		return nil, err
	}
	paths, err := servedPaths(doc, path, func(op map[string]any) {
		if c, ok := op["consumes"].([]any); ok {
			op["consumes"] = slices.DeleteFunc(c, func(t any) bool { return slices.Contains(applyPatch, t.(string)) })
		}
	})
	if err != nil {
		return nil, err
	}
	sections := map[string]map[string]any{"#/definitions/": section(doc, "definitions"), "#/parameters/": section(doc, "parameters")}
	kept, err := closure(paths, sections, "#/definitions/")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return map[string]any{
		"swagger": "2.0", "info": info(version), "paths": paths,
		"definitions": kept["#/definitions/"], "parameters": kept["#/parameters/"],
	}, nil
}

func extractV3(path, version string) (map[string]any, error) {
	doc, err := readJSON(path)
	if err != nil {
		return nil, err
	}
	paths, err := servedPaths(doc, path, func(op map[string]any) {
		if body, ok := op["requestBody"].(map[string]any); ok {
			if c, ok := body["content"].(map[string]any); ok {
				for _, t := range applyPatch {
					delete(c, t)
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	components, _ := doc["components"].(map[string]any)
	sections := map[string]map[string]any{"#/components/schemas/": section(components, "schemas")}
	kept, err := closure(paths, sections, "#/components/schemas/")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return map[string]any{
		"openapi": "3.0.0", "info": info(version), "paths": paths,
		"components": map[string]any{"schemas": kept["#/components/schemas/"]},
	}, nil
}

func info(version string) map[string]string {
	return map[string]string{"title": "podagent", "version": "Kubernetes " + version}
}

// servedPaths returns doc's path items for served, each with only the served operations, edited
// by fix.
func servedPaths(doc map[string]any, file string, fix func(op map[string]any)) (map[string]any, error) {
	all := section(doc, "paths")
	out := map[string]any{}
	for p, methods := range served {
		item, ok := all[p].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: no path %s", file, p)
		}
		kept := map[string]any{}
		if params, ok := item["parameters"]; ok {
			kept["parameters"] = params
		}
		for _, m := range methods {
			op, ok := item[m].(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: no %s %s", file, strings.ToUpper(m), p)
			}
			fix(op)
			kept[m] = op
		}
		out[p] = kept
	}
	return out, nil
}

// closure returns, per section (keyed by its $ref prefix), the entries that the paths, the root
// schemas and meta/v1 (in the section prefixed schemas) reference, directly or not.
func closure(paths map[string]any, sections map[string]map[string]any, schemas string) (map[string]map[string]any, error) {
	kept := map[string]map[string]any{}
	for prefix := range sections {
		kept[prefix] = map[string]any{}
	}
	var queue []string
	var visit func(v any)
	visit = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && k == "$ref" {
					queue = append(queue, s)
				} else {
					visit(e)
				}
			}
		case []any:
			for _, e := range v {
				visit(e)
			}
		}
	}
	visit(paths)
	for name := range sections[schemas] {
		if strings.HasPrefix(name, metaV1) {
			queue = append(queue, schemas+name)
		}
	}
	for _, name := range rootSchemas {
		queue = append(queue, schemas+name)
	}
	sort.Strings(queue) // only for deterministic error messages
	for len(queue) > 0 {
		ref := queue[0]
		queue = queue[1:]
		prefix, name, ok := cutRef(ref, sections)
		if !ok {
			return nil, fmt.Errorf("$ref %q names no known section", ref)
		}
		if _, done := kept[prefix][name]; done {
			continue
		}
		def, ok := sections[prefix][name]
		if !ok {
			return nil, fmt.Errorf("$ref %q: no such definition", ref)
		}
		kept[prefix][name] = def
		visit(def)
	}
	return kept, nil
}

func cutRef(ref string, sections map[string]map[string]any) (prefix, name string, ok bool) {
	for prefix := range sections {
		if name, ok := strings.CutPrefix(ref, prefix); ok {
			return prefix, name, true
		}
	}
	return "", "", false
}

func section(doc map[string]any, key string) map[string]any {
	s, _ := doc[key].(map[string]any)
	return s
}

func readJSON(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read OpenAPI document: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse OpenAPI document %s: %w", path, err)
	}
	return doc, nil
}

// write writes doc as compact JSON (map keys sorted, so that a rerun changes nothing), gzipped,
// to path.gz: each document is some 400 KB, 70 KB gzipped.
func write(path string, doc map[string]any) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("compress %s: %w", path, err)
	}
	e := json.NewEncoder(zw)
	e.SetEscapeHTML(false) // as the kube-apiserver: descriptions keep their "<" and "&"
	if err := e.Encode(doc); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress %s: %w", path, err)
	}
	if err := os.WriteFile(path+".gz", buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s.gz: %w", path, err)
	}
	log.Printf("wrote %s.gz (%d bytes)", path, buf.Len())
	return nil
}
