package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// waitTimeout bounds every wait in these tests: far above the one second a change may take, so
// that a loaded CI machine does not fail them, yet short enough that a hang is seen quickly.
const waitTimeout = 10 * time.Second

// podManifest is a minimal valid pod manifest.
func podManifest(name, image string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  containers:\n  - name: c\n    image: %s\n", name, image)
}

// waitUpdate receives Updates from ch until one satisfies ok, and returns it; it fails the test
// if none does before waitTimeout.
func waitUpdate(t *testing.T, ch <-chan Update, what string, ok func(Update) bool) Update {
	t.Helper()
	deadline := time.After(waitTimeout)
	var last *Update
	for {
		select {
		case u := <-ch:
			if ok(u) {
				return u
			}
			last = &u
		case <-deadline:
			if last == nil {
				t.Fatalf("waiting for %s: no update within %v", what, waitTimeout)
			}
			t.Fatalf("waiting for %s: last update within %v: %s", what, waitTimeout, describe(*last))
			return Update{}
		}
	}
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %v", what, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noUpdate asserts that ch delivers nothing for a while. A short quiet window cannot prove that
// nothing will ever come, but it catches a source that repeats itself on every period.
func noUpdate(t *testing.T, ch <-chan Update, window time.Duration) {
	t.Helper()
	select {
	case u := <-ch:
		t.Fatalf("unexpected update: %s", describe(u))
	case <-time.After(window):
	}
}

// podNames lists the names of u's pods, in order.
func podNames(u Update) string {
	names := make([]string, 0, len(u.Pods))
	for _, p := range u.Pods {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	return strings.Join(names, ",")
}

// podImage is the image of the first container of u's pod named ns/name, or "" if there is none.
func podImage(u Update, ns, name string) string {
	for _, p := range u.Pods {
		if p.Namespace == ns && p.Name == name && len(p.Spec.Containers) > 0 {
			return p.Spec.Containers[0].Image
		}
	}
	return ""
}

func describe(u Update) string {
	var errs []string
	for k, v := range u.Errs {
		errs = append(errs, k+": "+v.Error())
	}
	sort.Strings(errs)
	return fmt.Sprintf("source %s pods [%s] errs %v", u.Source, podNames(u), errs)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes content the way editors and config tools do: to a temporary file beside
// path, then renamed over it, so that readers never see a partial file.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startSource runs a source until the test ends, and checks that it then returns nil promptly.
func startSource(t *testing.T, name string, run func(context.Context, chan<- Update) error) <-chan Update {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Update)
	done := make(chan error, 1)
	go func() { done <- run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("%s did not return after its context ended", name)
		}
	})
	return out
}
