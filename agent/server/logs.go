package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// serveContainerLogs serves GET /containerLogs/{ns}/{pod}/{container} as the kubelet's
// getContainerLogs, errors included: an undecodable query 400 and an invalid one 422 (with the
// kubelet's terse JSON-looking messages), a missing pod or container 404, a failure to find the
// log 400; then the log, flushed line by line.
func (s *Server) serveContainerLogs(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	opts, code, msg := parseLogQuery(r.URL.Query())
	if code != 0 {
		writeErrorString(w, code, msg)
		return
	}
	pod, err := s.findPod(r.Context(), ns, name)
	if err != nil {
		writeErrorString(w, http.StatusInternalServerError, err.Error())
		return
	}
	if pod == nil {
		writeErrorString(w, http.StatusNotFound, fmt.Sprintf("pod %q does not exist", name))
		return
	}
	if !hasContainer(pod, container) {
		writeErrorString(w, http.StatusNotFound, fmt.Sprintf("container %q not found in pod %q", container, name))
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeErrorString(w, http.StatusInternalServerError, "unable to flush the response, cannot show logs")
		return
	}
	write, err := s.host.ContainerLog(r.Context(), ns, name, container, opts)
	if err != nil {
		writeErrorString(w, http.StatusBadRequest, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	flusher.Flush() // a follower with nothing to read yet still gets its answer started
	// The status line is sent: a failure now can only end the stream.
	if err := write(flushWriter{w: w, f: flusher}); err != nil {
		slog.Warn("kubelet server: serve container log", "pod", ns+"/"+name, "container", container, "err", err)
	}
}

// parseLogQuery decodes the log query as the kubelet does (its legacy parameter codec into
// v1.PodLogOptions, then v1 validation). A non-zero code is the kubelet's answer to a query that
// does not decode (400) or is invalid (422), with its message.
func parseLogQuery(q url.Values) (*corev1.PodLogOptions, int, string) {
	// "tail" is the old name of tailLines; "all" means no tail.
	if tail := q.Get("tail"); tail != "" {
		q = cloneValues(q)
		q["tailLines"] = []string{tail}
		if tail == "all" {
			delete(q, "tailLines")
		}
	}
	opts := &corev1.PodLogOptions{}
	if err := decodeLogOptions(q, opts); err != nil {
		return nil, http.StatusBadRequest, `{"message": "Unable to decode query."}`
	}
	if !validLogOptions(opts) {
		return nil, http.StatusUnprocessableEntity, `{"message": "Invalid request."}`
	}
	// PodLogsQuerySplitStreams is alpha and off in the kubelet: only the whole log is served.
	if opts.Stream != nil && *opts.Stream != corev1.LogStreamAll {
		return nil, http.StatusBadRequest, fmt.Sprintf("unable to return the given log stream: %q. Please enable PodLogsQuerySplitStreams feature gate in kubelet", *opts.Stream)
	}
	return opts, 0, ""
}

// decodeLogOptions is the generated url.Values conversion of v1.PodLogOptions (in
// k8s.io/kubernetes), with apimachinery's converters: a boolean is true unless "false" or "0",
// a number must parse, sinceTime is RFC3339.
func decodeLogOptions(q url.Values, o *corev1.PodLogOptions) error {
	if v, ok := q["container"]; ok && len(v) > 0 {
		if err := runtime.Convert_Slice_string_To_string(&v, &o.Container, nil); err != nil {
			return err
		}
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"follow", &o.Follow}, {"previous", &o.Previous}, {"timestamps", &o.Timestamps},
		{"insecureSkipTLSVerifyBackend", &o.InsecureSkipTLSVerifyBackend}} {
		if v, ok := q[b.name]; ok && len(v) > 0 {
			if err := runtime.Convert_Slice_string_To_bool(&v, b.dst, nil); err != nil {
				return err
			}
		}
	}
	for _, n := range []struct {
		name string
		dst  **int64
	}{{"sinceSeconds", &o.SinceSeconds}, {"tailLines", &o.TailLines}, {"limitBytes", &o.LimitBytes}} {
		if v, ok := q[n.name]; ok && len(v) > 0 {
			if err := runtime.Convert_Slice_string_To_Pointer_int64(&v, n.dst, nil); err != nil {
				return err
			}
		}
	}
	if v, ok := q["sinceTime"]; ok && len(v) > 0 {
		if err := metav1.Convert_Slice_string_To_Pointer_v1_Time(&v, &o.SinceTime, nil); err != nil {
			return err
		}
	}
	if v, ok := q["stream"]; ok && len(v) > 0 {
		s := v[0]
		o.Stream = &s
	}
	return nil
}

// validLogOptions is the kubelet's v1 ValidatePodLogOptions.
func validLogOptions(o *corev1.PodLogOptions) bool {
	switch {
	case o.TailLines != nil && *o.TailLines < 0,
		o.LimitBytes != nil && *o.LimitBytes < 1,
		o.SinceSeconds != nil && o.SinceTime != nil,
		o.SinceSeconds != nil && *o.SinceSeconds < 1:
		return false
	}
	if o.Stream != nil {
		switch *o.Stream {
		case corev1.LogStreamAll:
		case corev1.LogStreamStdout, corev1.LogStreamStderr:
			if o.TailLines != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func cloneValues(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// flushWriter flushes every write, so that a follower sees each line as it comes.
type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.f.Flush()
	return n, err
}
