package apiserver

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
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
	factory serializer.CodecFactory
	// scheme has core/v1 and meta/v1: server-side apply converts and creates objects with it.
	scheme *runtime.Scheme
}

func newCodecs() (*codecs, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	// DeleteOptions bodies come as meta.k8s.io/v1 too.
	metav1.AddToGroupVersion(scheme, metav1.SchemeGroupVersion)
	return &codecs{factory: serializer.NewCodecFactory(scheme), scheme: scheme}, nil
}

// readBody reads a request body of at most maxBody bytes; a longer one is 413, as the
// apiserver's: never cut short and used as if it were whole.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	if len(body) > maxBody {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBody))
	}
	return body, nil
}

// serializerFor is the serializer for a request's Content-Type (JSON when none), or 415 for a
// media type the API does not read, as the apiserver's NegotiateInputSerializer.
func (c *codecs) serializerFor(contentType string) (runtime.SerializerInfo, error) {
	infos := c.factory.SupportedMediaTypes()
	if contentType == "" {
		return infos[0], nil
	}
	if mediaType, _, err := mime.ParseMediaType(contentType); err == nil {
		if info, ok := runtime.SerializerInfoForMediaType(infos, mediaType); ok {
			return info, nil
		}
	}
	var accepted []string
	for _, info := range infos {
		accepted = append(accepted, info.MediaType)
	}
	return runtime.SerializerInfo{}, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schema.GroupResource{}, "",
		"the body of the request was in an unknown format - accepted media types include: "+strings.Join(accepted, ", "), 0, false)
}

// decode reads a create or update body into into, as the apiserver does: by its Content-Type,
// with the fieldValidation mode (already validated) choosing between rejecting (Strict), warning
// about (Warn, the default) and ignoring (Ignore) unknown and duplicate fields. A body of
// another kind or version than the URL's (a Namespace sent to pods, an apps/v1 Pod) is 400.
func (c *codecs) decode(w http.ResponseWriter, r *http.Request, body []byte, into runtime.Object, want schema.GroupVersionKind, fieldValidation string) error {
	kind := want.Kind
	info, err := c.serializerFor(r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	dec := info.Serializer
	if fieldValidation != metav1.FieldValidationIgnore && info.StrictSerializer != nil {
		dec = info.StrictSerializer
	}
	obj, gvk, err := dec.Decode(body, &want, into)
	if err != nil {
		strict, isStrict := runtime.AsStrictDecodingError(err)
		if !isStrict || fieldValidation == metav1.FieldValidationStrict || obj == nil {
			return decodeError(kind, gvk, body, err)
		}
		for _, e := range strict.Errors() {
			w.Header().Add("Warning", fmt.Sprintf(`299 - %q`, e.Error()))
		}
	}
	if obj != into {
		return decodeError(kind, gvk, body, fmt.Errorf("converting (%T) to (%T): unknown conversion", obj, into))
	}
	if gvk.GroupVersion() != want.GroupVersion() {
		return apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion(), want.GroupVersion()))
	}
	return nil
}

// decodeError is the apiserver's 400 for a body that cannot be read as kind (transformDecodeError).
func decodeError(kind string, gvk *schema.GroupVersionKind, body []byte, err error) error {
	if gvk != nil && gvk.Kind != "" {
		return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, kind, err))
	}
	return apierrors.NewBadRequest(fmt.Sprintf("the object provided is unrecognized (must be of type %s): %v (%s)", kind, err, summarizeData(body, 30)))
}

// summarizeData is the start of a body for an error message, as the apiserver quotes it.
func summarizeData(data []byte, maxLength int) string {
	switch {
	case len(data) == 0:
		return "<empty>"
	case data[0] == '{':
		if len(data) > maxLength {
			return string(data[:maxLength]) + " ..."
		}
		return string(data)
	default:
		if len(data) > maxLength {
			return hex.EncodeToString(data[:maxLength]) + " ..."
		}
		return hex.EncodeToString(data)
	}
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
