package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podagent/podagent/internal/keys"
)

// manifestServer serves a manifest with an ETag, answers 304 to a matching If-None-Match, and
// counts what it was asked.
type manifestServer struct {
	*httptest.Server

	mu          sync.Mutex
	body        string
	status      int // 0 means serve the body
	hits        int
	notModified int
	ifNoneMatch []string
}

func newManifestServer(t *testing.T, body string) *manifestServer {
	t.Helper()
	s := &manifestServer{body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve)) // on 127.0.0.1
	t.Cleanup(s.Close)
	return s
}

func (s *manifestServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits++
	s.ifNoneMatch = append(s.ifNoneMatch, r.Header.Get("If-None-Match"))
	if s.status != 0 {
		http.Error(w, "failing on purpose", s.status)
		return
	}
	sum := sha256.Sum256([]byte(s.body))
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	if r.Header.Get("If-None-Match") == etag {
		s.notModified++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Write([]byte(s.body))
}

func (s *manifestServer) set(body string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.status = body, status
}

func (s *manifestServer) counts() (hits, notModified int, ifNoneMatch []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits, s.notModified, append([]string(nil), s.ifNoneMatch...)
}

// startPollURL runs PollURL until the test ends, and checks that it then returns nil promptly.
func startPollURL(t *testing.T, url string, period time.Duration) <-chan Update {
	t.Helper()
	return startSource(t, "PollURL", func(ctx context.Context, out chan<- Update) error {
		return PollURL(ctx, &http.Client{}, url, "n", period, out)
	})
}

func TestPollURLInitialFetchAndNotModified(t *testing.T) {
	srv := newManifestServer(t, podManifest("a", "v1")+"---\n"+podManifest("b", "v1"))
	updates := startPollURL(t, srv.URL, 20*time.Millisecond)
	u := waitUpdate(t, updates, "initial update", func(Update) bool { return true })
	if u.Source != SourceHTTP || podNames(u) != "default/a-n,default/b-n" || len(u.Errs) != 0 {
		t.Fatalf("initial update: %s", describe(u))
	}
	if got := u.Pods[0].Annotations[keys.ConfigSourceAnnotation]; got != SourceHTTP {
		t.Errorf("config.source %q, want http", got)
	}

	// Unchanged content: the server answers 304, and nothing is sent.
	eventually(t, "three 304 answers", func() bool { _, nm, _ := srv.counts(); return nm >= 3 })
	noUpdate(t, updates, 100*time.Millisecond)
	hits, notModified, inm := srv.counts()
	if inm[0] != "" {
		t.Errorf("first request sent If-None-Match %q, with no ETag known yet", inm[0])
	}
	for i, v := range inm[1:] {
		if v == "" {
			t.Errorf("request %d sent no If-None-Match", i+1)
		}
	}
	if notModified < hits-1 {
		t.Errorf("%d of %d requests answered 304, want all but the first", notModified, hits)
	}
}

func TestPollURLFollowsContent(t *testing.T) {
	srv := newManifestServer(t, podManifest("a", "v1"))
	updates := startPollURL(t, srv.URL, 20*time.Millisecond)
	first := waitUpdate(t, updates, "initial update", func(u Update) bool { return podImage(u, "default", "a-n") == "v1" })

	srv.set(podManifest("a", "v2"), 0)
	u := waitUpdate(t, updates, "edited pod", func(u Update) bool { return podImage(u, "default", "a-n") == "v2" })
	if u.Pods[0].UID != first.Pods[0].UID {
		t.Error("an edit changed the pod's UID")
	}
	if u.Pods[0].Annotations[keys.ConfigHashAnnotation] == first.Pods[0].Annotations[keys.ConfigHashAnnotation] {
		t.Error("an edit kept the config.hash")
	}

	// A body that does not decode keeps the last good pods, with the error.
	srv.set("apiVersion: v1\nkind: Pod\nmetadata: [\n", 0)
	u = waitUpdate(t, updates, "decode error", func(u Update) bool { return u.Errs[srv.URL] != nil })
	if got := podImage(u, "default", "a-n"); got != "v2" {
		t.Errorf("after a bad body the pod has image %q, want the last good v2", got)
	}

	srv.set(podManifest("b", "v1"), 0)
	waitUpdate(t, updates, "replaced pod", func(u Update) bool { return podNames(u) == "default/b-n" && len(u.Errs) == 0 })

	srv.set("", 0)
	waitUpdate(t, updates, "emptied manifest", func(u Update) bool { return len(u.Pods) == 0 && len(u.Errs) == 0 })
}

func TestPollURLServerFailureKeepsPods(t *testing.T) {
	srv := newManifestServer(t, podManifest("a", "v1"))
	updates := startPollURL(t, srv.URL, 20*time.Millisecond)
	waitUpdate(t, updates, "initial update", func(u Update) bool { return podNames(u) == "default/a-n" })

	srv.set(podManifest("a", "v1"), http.StatusServiceUnavailable)
	u := waitUpdate(t, updates, "status error", func(u Update) bool { return u.Errs[srv.URL] != nil })
	if podNames(u) != "default/a-n" || !strings.Contains(u.Errs[srv.URL].Error(), "503") {
		t.Fatalf("on a 503: %s", describe(u))
	}
	// The same error on every poll is not news.
	noUpdate(t, updates, 200*time.Millisecond)

	srv.set(podManifest("a", "v1"), 0)
	u = waitUpdate(t, updates, "recovered", func(u Update) bool { return len(u.Errs) == 0 })
	if podNames(u) != "default/a-n" {
		t.Fatalf("after recovery: %s", describe(u))
	}

	srv.Close()
	u = waitUpdate(t, updates, "server down", func(u Update) bool { return u.Errs[srv.URL] != nil })
	if podNames(u) != "default/a-n" {
		t.Fatalf("with the server down the pods are gone: %s", describe(u))
	}
}

func TestPollURLUnreachableAtStart(t *testing.T) {
	srv := newManifestServer(t, "")
	srv.Close()
	u := waitUpdate(t, startPollURL(t, srv.URL, time.Hour), "initial update", func(Update) bool { return true })
	if len(u.Pods) != 0 || u.Errs[srv.URL] == nil {
		t.Fatalf("initial update from an unreachable server: %s", describe(u))
	}
}

func TestPollURLStopsWhileNobodyReads(t *testing.T) {
	srv := newManifestServer(t, podManifest("a", "v1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- PollURL(ctx, nil, srv.URL, "n", time.Hour, make(chan Update)) }()
	// Wait until the fetch is done, so that PollURL is blocked on its send when ctx ends.
	eventually(t, "first fetch", func() bool { hits, _, _ := srv.counts(); return hits >= 1 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("PollURL: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("PollURL stayed blocked on its send after its context ended")
	}
}
