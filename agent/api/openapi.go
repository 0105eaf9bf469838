package api

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Media types of the OpenAPI documents, as the kube-apiserver serves them.
const (
	mediaTypeJSON = "application/json"
	// mediaTypeOpenAPIV2 is the protobuf v2 document. kubectl asks for it by its deprecated name
	// (mediaTypeOpenAPIV2Deprecated) but cannot parse that name in a Content-Type, for "@" is not
	// allowed in a token: as the kube-apiserver, answer with this one.
	mediaTypeOpenAPIV2           = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
	mediaTypeOpenAPIV2Deprecated = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
)

// openAPIKinds are the kinds whose PATCH operation the OpenAPI documents describe.
var openAPIKinds = []struct{ kind, path string }{
	{"Pod", "/api/v1/namespaces/{namespace}/pods/{name}"},
	{"Namespace", "/api/v1/namespaces/{name}"},
	{"Node", "/api/v1/nodes/{name}"},
}

// fieldValidationDoc is the kube-apiserver's description of the fieldValidation parameter, shortened.
const fieldValidationDoc = "fieldValidation instructs the server on how to handle objects in the request " +
	"containing unknown or duplicate fields. Valid values are: Ignore, Warn and Strict."

// registerOpenAPI registers GET /openapi/v2 (JSON or protobuf), /openapi/v3 and
// /openapi/v3/api/v1 (JSON) on mux. The documents are built once, here.
//
// They hold only what kubectl reads for `create -f` and `apply -f` with the default
// --validate=strict: a PATCH operation per kind carrying x-kubernetes-group-version-kind and a
// fieldValidation query parameter. Finding it, kubectl leaves validation to the server and sends
// ?fieldValidation=Strict. They deliberately have no schemas: apply computes its strategic merge
// patch from the schema it finds for a kind (v3 when the PATCH operation accepts
// strategic-merge-patch+json, else v2 definitions) and warns when that schema lacks the fields it
// needs; with none it uses its compiled-in k8s.io/api types, which are exact for core/v1.
func registerOpenAPI(mux *http.ServeMux) error {
	v2, v3 := openAPIDocuments()
	v2JSON, err := json.Marshal(v2)
	if err != nil {
		return fmt.Errorf("encode OpenAPI v2 document: %w", err)
	}
	// kubectl 1.27 and 1.28 fetch only the protobuf form, the gnostic Document.
	doc, err := openapiv2.ParseDocument(v2JSON)
	if err != nil {
		return fmt.Errorf("parse OpenAPI v2 document: %w", err)
	}
	v2Proto, err := proto.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode OpenAPI v2 document as protobuf: %w", err)
	}
	v3JSON, err := json.Marshal(v3)
	if err != nil {
		return fmt.Errorf("encode OpenAPI v3 document: %w", err)
	}
	// The discovery document names the v3 document by the hash of its content, so that clients
	// may cache it for good: as the kube-apiserver, an uppercase hex SHA-512.
	v3Hash := fmt.Sprintf("%X", sha512.Sum512(v3JSON))
	discovery, err := json.Marshal(map[string]any{"paths": map[string]any{
		"api/v1": map[string]string{"serverRelativeURL": "/openapi/v3/api/v1?hash=" + v3Hash},
	}})
	if err != nil {
		return fmt.Errorf("encode OpenAPI v3 discovery document: %w", err)
	}

	mux.Handle("GET /openapi/v2", newOpenAPIDoc(representation{mediaTypeJSON, v2JSON},
		representation{mediaTypeOpenAPIV2, v2Proto}))
	// kubectl 1.29 to 1.33 ask for the v3 documents as JSON only.
	mux.Handle("GET /openapi/v3", newOpenAPIDoc(representation{mediaTypeJSON, discovery}))
	v3Doc := newOpenAPIDoc(representation{mediaTypeJSON, v3JSON})
	mux.HandleFunc("GET /openapi/v3/api/v1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hash") == v3Hash {
			w.Header().Set("Cache-Control", "public, immutable, max-age=31536000")
		}
		v3Doc.ServeHTTP(w, r)
	})
	return nil
}

// openAPIDocuments returns the OpenAPI v2 and v3 documents as JSON-encodable values.
func openAPIDocuments() (v2, v3 map[string]any) {
	v2Paths, v3Paths := map[string]any{}, map[string]any{}
	for _, k := range openAPIKinds {
		gvk := map[string]string{"group": "", "version": "v1", "kind": k.kind}
		op := func(param map[string]any) map[string]any {
			return map[string]any{
				"operationId":                     "patchCoreV1" + k.kind,
				"parameters":                      []any{param},
				"responses":                       map[string]any{"200": map[string]any{"description": "OK"}},
				"x-kubernetes-action":             "patch",
				"x-kubernetes-group-version-kind": gvk,
			}
		}
		v2Paths[k.path] = map[string]any{"patch": op(map[string]any{
			"name": "fieldValidation", "in": "query", "description": fieldValidationDoc,
			"type": "string", "uniqueItems": true,
		})}
		v3Paths[k.path] = map[string]any{"patch": op(map[string]any{
			"name": "fieldValidation", "in": "query", "description": fieldValidationDoc,
			"schema": map[string]any{"type": "string", "uniqueItems": true},
		})}
	}
	info := map[string]string{"title": "podagent", "version": "v1"}
	v2 = map[string]any{"swagger": "2.0", "info": info, "paths": v2Paths}
	// The empty schemas make `kubectl explain` say it has no schema for a kind, rather than fail
	// executing its template.
	v3 = map[string]any{"openapi": "3.0.0", "info": info, "paths": v3Paths,
		"components": map[string]any{"schemas": map[string]any{}}}
	return v2, v3
}

// representation is a document in one media type.
type representation struct {
	mediaType string
	body      []byte
}

// openAPIDoc serves a static document in the representation the Accept header prefers.
type openAPIDoc struct {
	reps  []representation // the first is the default
	etags []string
}

func newOpenAPIDoc(reps ...representation) *openAPIDoc {
	d := &openAPIDoc{reps: reps}
	for _, r := range reps {
		d.etags = append(d.etags, fmt.Sprintf(`"%X"`, sha512.Sum512(r.body)))
	}
	return d
}

func (d *openAPIDoc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Vary", "Accept")
	i := d.negotiate(r.Header.Get("Accept"))
	if i < 0 {
		writeError(w, notAcceptable(r.Header.Get("Accept"), d.reps))
		return
	}
	w.Header().Set("Content-Type", d.reps[i].mediaType)
	w.Header().Set("Etag", d.etags[i])
	// ServeContent answers If-None-Match with 304 Not Modified.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(d.reps[i].body))
}

// negotiate returns the index of the representation of the first media type in accept that d
// has, 0 for an empty accept or a wildcard, and -1 when d has none of them. Quality values are
// ignored: kubectl lists types in its order of preference. mime.ParseMediaType is of no use here:
// it rejects mediaTypeOpenAPIV2Deprecated.
func (d *openAPIDoc) negotiate(accept string) int {
	if strings.TrimSpace(accept) == "" {
		return 0
	}
	for entry := range strings.SplitSeq(accept, ",") {
		mt, _, _ := strings.Cut(entry, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		if mt == mediaTypeOpenAPIV2Deprecated {
			mt = mediaTypeOpenAPIV2
		}
		if mt == "*/*" || mt == "application/*" {
			return 0
		}
		for i, rep := range d.reps {
			if mt == rep.mediaType {
				return i
			}
		}
	}
	return -1
}

func notAcceptable(accept string, reps []representation) error {
	var types []string
	for _, r := range reps {
		types = append(types, r.mediaType)
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{Code: http.StatusNotAcceptable,
		Reason:  metav1.StatusReasonNotAcceptable,
		Message: fmt.Sprintf("only the media types %s are supported, not %q", strings.Join(types, ", "), accept)}}
}
