package apiserver

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
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

// The OpenAPI documents: the kube-apiserver's own, cut down by hack/openapi to the operations
// podagent serves and the schemas they and Pod, Namespace, Node, Event and meta/v1 reference.
//
//go:generate go run ../hack/openapi -out openapi
var (
	//go:embed openapi/v2.json.gz
	openAPIV2Gzip []byte
	//go:embed openapi/v3.json.gz
	openAPIV3Gzip []byte
)

// registerOpenAPI registers GET /openapi/v2 (JSON or protobuf), /openapi/v3 and
// /openapi/v3/api/v1 (JSON) on mux. The documents are decoded once, here.
//
// They are the kube-apiserver's, so kubectl behaves as against a real cluster:
//   - `kubectl explain` finds each kind's schema by its x-kubernetes-group-version-kind (v3 since
//     kubectl 1.27) and prints the real descriptions and field types.
//   - `create -f` and `apply -f` with the default --validate=strict find the fieldValidation
//     parameter of the kind's PATCH operation, leave validation to the server and send
//     ?fieldValidation=Strict.
//   - client-side apply computes its strategic merge patch from the kind's schema: v3 when the
//     PATCH operation accepts strategic-merge-patch+json, else the v2 definitions.
//   - the PATCH operations list server-side apply's apply-patch+yaml, which the server merges
//     with the v3 schemas (apply.go); not apply-patch+cbor, which it refuses.
func registerOpenAPI(mux *http.ServeMux) error {
	v2JSON, err := gunzip(openAPIV2Gzip)
	if err != nil {
		return fmt.Errorf("decompress OpenAPI v2 document: %w", err)
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
	v3JSON, err := gunzip(openAPIV3Gzip)
	if err != nil {
		return fmt.Errorf("decompress OpenAPI v3 document: %w", err)
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

// gunzip returns the uncompressed content of data.
func gunzip(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
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
