package agent_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/podagent/podagent/internal/testenv"
)

// Static pods from --manifest-url: fetched, changed when the served content changes, kept while
// the server is unreachable, and removed when the server stops serving them.
func TestManifestURL(t *testing.T) {
	var mu sync.Mutex
	body, status, hits := webPod, http.StatusOK, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hits++
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	serve := func(b string, s int) {
		mu.Lock()
		defer mu.Unlock()
		body, status = b, s
	}

	cfg := testConfig(t, "node")
	cfg.ManifestURL = srv.URL
	cfg.HTTPCheckPeriod = 200 * time.Millisecond
	ta := startAgentWith(t, cfg)
	p := ta.waitPod(t, "default", "web-node", 30*time.Second, running)
	if p.Annotations["kubernetes.io/config.source"] != "http" {
		t.Errorf("config.source %q, want http", p.Annotations["kubernetes.io/config.source"])
	}
	before := containerStatus(p, "web")

	// The server fails for a while: the pod stays as it is.
	serve("", http.StatusServiceUnavailable)
	mu.Lock()
	failingSince := hits
	mu.Unlock()
	// Several failed polls must have happened for the assertion to mean anything.
	testenv.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if hits < failingSince+3 {
			return fmt.Errorf("%d polls since the server started failing", hits-failingSince)
		}
		return nil
	})
	p = ta.waitPod(t, "default", "web-node", time.Second, running)
	if c := containerStatus(p, "web"); c.ContainerID != before.ContainerID || p.DeletionTimestamp != nil {
		t.Fatalf("an unreachable manifest URL changed the pod: %s, deletion %v", describeContainers(p), p.DeletionTimestamp)
	}

	serve("", http.StatusOK) // an empty manifest: no pods
	ta.waitGone(t, "default", "web-node", string(p.UID), 30*time.Second)
}
