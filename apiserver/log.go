package apiserver

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/podagent/podagent/logs"
)

// podLog serves GET .../pods/NAME/log with the kubelet's query parameters: container, follow,
// previous, tailLines, sinceSeconds, sinceTime, timestamps, limitBytes.
func (s *Server) podLog(w http.ResponseWriter, r *http.Request) {
	opts, err := parseLogOptions(r.URL.Query(), r.PathValue("name"), time.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	k, err := s.kubelet()
	if err != nil {
		writeError(w, err)
		return
	}
	write, err := k.ContainerLog(r.Context(), r.PathValue("namespace"), r.PathValue("name"), opts)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush() // a follower with nothing to read yet still gets its answer started
	}
	// The status line is sent: a failure now can only end the stream.
	if err := write(flushWriter{w}); err != nil {
		slog.Warn("serve log", "pod", r.PathValue("namespace")+"/"+r.PathValue("name"), "err", err)
	}
}

// parseLogOptions reads the log query as the kube-apiserver does: a value that does not parse is
// 400 BadRequest; one out of range (tailLines=-1, limitBytes=0, sinceSeconds=0, both sinceTime and
// sinceSeconds) is 422 Invalid for PodLogOptions, naming the parameter.
func parseLogOptions(q url.Values, pod string, now time.Time) (logs.PodLogOptions, error) {
	o := logs.PodLogOptions{Container: q.Get("container")}
	o.Tail = -1
	var parseErrs []string
	var errs field.ErrorList
	boolean := func(name string, dst *bool) {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				parseErrs = append(parseErrs, fmt.Sprintf("%s: %q is not a boolean", name, v))
			}
			*dst = b
		}
	}
	integer := func(name string, dst *int64, min int64, msg string) {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			switch {
			case err != nil:
				parseErrs = append(parseErrs, err.Error())
			case n < min:
				errs = append(errs, field.Invalid(field.NewPath(name), n, msg))
			default:
				*dst = n
			}
		}
	}
	boolean("follow", &o.Follow)
	boolean("previous", &o.Previous)
	boolean("timestamps", &o.Timestamps)
	integer("tailLines", &o.Tail, 0, "must be greater than or equal to 0")
	integer("limitBytes", &o.LimitBytes, 1, "must be greater than 0")
	var since int64
	integer("sinceSeconds", &since, 1, "must be greater than 0")
	if since > 0 {
		o.Since = now.Add(-time.Duration(since) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			parseErrs = append(parseErrs, err.Error())
		}
		if q.Get("sinceSeconds") != "" {
			errs = append(errs, field.Forbidden(field.NewPath(""), "at most one of `sinceTime` or `sinceSeconds` may be specified"))
		}
		o.Since = t
	}
	if len(parseErrs) > 0 {
		return o, apierrors.NewBadRequest(strings.Join(parseErrs, ", "))
	}
	if len(errs) > 0 {
		return o, apierrors.NewInvalid(schema.GroupKind{Kind: "PodLogOptions"}, pod, errs)
	}
	return o, nil
}

// flushWriter flushes every write, so that a follower sees each line as it comes.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}
