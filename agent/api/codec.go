package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	goruntime "runtime"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// maxBody bounds a request body, as the kube-apiserver's 3 MiB request limit.
const maxBody = 3 << 20

// codecs decode request bodies in every form kubectl sends (JSON, YAML, protobuf), leniently and
// strictly (fieldValidation=Strict: unknown and duplicate fields are errors).
type codecs struct {
	lenient runtime.Decoder
	strict  runtime.Decoder
}

func newCodecs() (*codecs, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	return &codecs{
		lenient: serializer.NewCodecFactory(scheme).UniversalDeserializer(),
		strict:  serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer(),
	}, nil
}

// decode reads the request body into into, as the apiserver does: the fieldValidation query
// parameter chooses between rejecting (Strict), warning about (Warn, the default) and ignoring
// (Ignore) unknown and duplicate fields.
func (c *codecs) decode(w http.ResponseWriter, r *http.Request, into runtime.Object, kind string) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	if len(body) > maxBody {
		return apierrors.NewRequestEntityTooLargeError("limit is 3145728")
	}
	mode := r.URL.Query().Get("fieldValidation")
	switch mode {
	case "", "Warn", "Ignore", "Strict":
	default:
		return apierrors.NewBadRequest(fmt.Sprintf("fieldValidation must be one of Ignore, Warn or Strict, not %q", mode))
	}
	gvk := corev1.SchemeGroupVersion.WithKind(kind)
	if mode == "Strict" {
		if _, _, err := c.strict.Decode(body, &gvk, into); err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("%s in version \"v1\" cannot be handled as a %s: %v", kind, kind, err))
		}
		return nil
	}
	if _, _, err := c.lenient.Decode(body, &gvk, into); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("%s in version \"v1\" cannot be handled as a %s: %v", kind, kind, err))
	}
	if mode == "" || mode == "Warn" {
		if _, _, err := c.strict.Decode(body, &gvk, into.DeepCopyObject()); err != nil {
			if se, ok := runtime.AsStrictDecodingError(err); ok {
				for _, e := range se.Errors() {
					w.Header().Add("Warning", fmt.Sprintf(`299 - %q`, e.Error()))
				}
			}
		}
	}
	return nil
}

// writeJSON answers with obj as JSON.
func writeJSON(w http.ResponseWriter, code int, obj any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(obj)
}

// wantsTable reports whether the client asked for a meta.k8s.io/v1 Table (kubectl get does).
func wantsTable(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if strings.Contains(part, "as=Table") && strings.Contains(part, "g=meta.k8s.io") && strings.Contains(part, "v=v1") &&
			!strings.Contains(part, "v=v1beta1") {
			return true
		}
	}
	return false
}

func goarch() string { return goruntime.GOARCH }
