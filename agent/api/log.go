package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podagent/podagent/agent"
)

// podLog serves GET .../pods/NAME/log with the kubelet's query parameters: container, follow,
// previous, tailLines, sinceSeconds, sinceTime, timestamps, limitBytes.
func (s *Server) podLog(w http.ResponseWriter, r *http.Request) {
	opts, err := parseLogOptions(r.URL.Query(), time.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	write, err := s.agent.ContainerLog(r.Context(), r.PathValue("namespace"), r.PathValue("name"), opts)
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

func parseLogOptions(q url.Values, now time.Time) (agent.LogOptions, error) {
	o := agent.LogOptions{Container: q.Get("container")}
	o.Tail = -1
	var errs []string
	boolean := func(name string, dst *bool) {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a boolean", name, v))
			}
			*dst = b
		}
	}
	integer := func(name string, dst *int64, min int64) {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < min {
				errs = append(errs, fmt.Sprintf("%s: %q must be an integer of at least %d", name, v, min))
			}
			*dst = n
		}
	}
	boolean("follow", &o.Follow)
	boolean("previous", &o.Previous)
	boolean("timestamps", &o.Timestamps)
	integer("tailLines", &o.Tail, 0)
	integer("limitBytes", &o.LimitBytes, 1)
	var since int64
	integer("sinceSeconds", &since, 1)
	if since > 0 {
		o.Since = now.Add(-time.Duration(since) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		if since > 0 {
			errs = append(errs, "at most one of sinceTime or sinceSeconds may be specified")
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("sinceTime: %q is not an RFC3339 time", v))
		}
		o.Since = t
	}
	if len(errs) > 0 {
		return o, apierrors.NewBadRequest(fmt.Sprint(errs))
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
