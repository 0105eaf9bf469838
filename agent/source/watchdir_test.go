package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podagent/podagent/internal/keys"
)

// noResync is a resync period that never comes during a test: what such a test sees comes from
// file events alone.
const noResync = time.Hour

// startWatchDir runs WatchDir until the test ends, and checks that it then returns nil promptly.
func startWatchDir(t *testing.T, dir string, resync time.Duration) <-chan Update {
	t.Helper()
	return startSource(t, "WatchDir", func(ctx context.Context, out chan<- Update) error {
		return WatchDir(ctx, dir, "n", resync, out)
	})
}

func TestWatchDirInitialUpdate(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		u := waitUpdate(t, startWatchDir(t, t.TempDir(), noResync), "initial update", func(Update) bool { return true })
		if u.Source != SourceFile || len(u.Pods) != 0 || len(u.Errs) != 0 {
			t.Fatalf("initial update: %s", describe(u))
		}
	})
	t.Run("existing files", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "a.yaml"), podManifest("a", "x"))
		writeFile(t, filepath.Join(dir, "b.json"), `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"x"}]}}`)
		u := waitUpdate(t, startWatchDir(t, dir, noResync), "initial update", func(Update) bool { return true })
		if podNames(u) != "default/a-n,default/b-n" || len(u.Errs) != 0 {
			t.Fatalf("initial update: %s", describe(u))
		}
	})
}

// TestWatchDirFollowsEdits walks one manifest through its life: each step must show up from file
// events alone, and no update on the way may lose the pod while its file exists.
func TestWatchDirFollowsEdits(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.yaml")
	updates := startWatchDir(t, dir, noResync)
	waitUpdate(t, updates, "initial update", func(Update) bool { return true })

	writeFile(t, path, podManifest("web", "v1"))
	first := waitUpdate(t, updates, "new file", func(u Update) bool { return podImage(u, "default", "web-n") == "v1" })
	uid, hash := first.Pods[0].UID, first.Pods[0].Annotations[keys.ConfigHashAnnotation]

	// keepsPod fails the test if an update lost the pod: its file exists all along.
	keepsPod := func(next func(Update) bool) func(Update) bool {
		return func(u Update) bool {
			if len(u.Pods) != 1 || u.Pods[0].UID != uid {
				t.Errorf("update lost the pod while its file exists: %s", describe(u))
			}
			return next(u)
		}
	}

	writeFile(t, path, podManifest("web", "v2"))
	u := waitUpdate(t, updates, "edit in place", keepsPod(func(u Update) bool { return podImage(u, "default", "web-n") == "v2" }))
	if h := u.Pods[0].Annotations[keys.ConfigHashAnnotation]; h == hash {
		t.Error("config.hash did not change with the content")
	}

	replaceFile(t, path, podManifest("web", "v3"))
	waitUpdate(t, updates, "rename into place", keepsPod(func(u Update) bool { return podImage(u, "default", "web-n") == "v3" && len(u.Errs) == 0 }))

	replaceFile(t, path, strings.Replace(podManifest("web", "v4"), "image:", "imagee:", 1))
	u = waitUpdate(t, updates, "broken edit reported", keepsPod(func(u Update) bool { return u.Errs[path] != nil }))
	if got := podImage(u, "default", "web-n"); got != "v3" {
		t.Errorf("after a broken edit the pod has image %q, want the last good v3", got)
	}
	if !strings.Contains(u.Errs[path].Error(), "imagee") {
		t.Errorf("error %q does not name the unknown field", u.Errs[path])
	}

	replaceFile(t, path, podManifest("web", "v5"))
	waitUpdate(t, updates, "fixed", keepsPod(func(u Update) bool { return podImage(u, "default", "web-n") == "v5" && len(u.Errs) == 0 }))

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitUpdate(t, updates, "file removed", func(u Update) bool { return len(u.Pods) == 0 && len(u.Errs) == 0 })
}

func TestWatchDirCreatedLater(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	updates := startWatchDir(t, dir, noResync)
	u := waitUpdate(t, updates, "initial update", func(Update) bool { return true })
	if len(u.Pods) != 0 || len(u.Errs) != 0 {
		t.Fatalf("missing directory: %s", describe(u))
	}

	// Created without a resync: the parent's watch must see it.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "a.yaml"), podManifest("a", "x"))
	waitUpdate(t, updates, "pod of the new directory", func(u Update) bool { return podNames(u) == "default/a-n" })

	// Removed and created again: the new directory is a new inode to watch.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitUpdate(t, updates, "directory removed", func(u Update) bool { return len(u.Pods) == 0 })
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "b.yaml"), podManifest("b", "x"))
	waitUpdate(t, updates, "pod of the recreated directory", func(u Update) bool { return podNames(u) == "default/b-n" })
	// A later change in it must be seen too, proving it is watched and not only read once.
	writeFile(t, filepath.Join(dir, "c.yaml"), podManifest("c", "x"))
	waitUpdate(t, updates, "new file in the recreated directory", func(u Update) bool { return podNames(u) == "default/b-n,default/c-n" })
}

func TestWatchDirParentCreatedLaterPickedUpAtResync(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "manifests")
	updates := startWatchDir(t, dir, 100*time.Millisecond)
	waitUpdate(t, updates, "initial update", func(Update) bool { return true })
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "a.yaml"), podManifest("a", "x"))
	waitUpdate(t, updates, "pod after resync", func(u Update) bool { return podNames(u) == "default/a-n" })
	// From then on it is watched: a change shows up within the test's wait even though resync
	// would also find it; what matters here is that the directory is followed at all.
	writeFile(t, filepath.Join(dir, "b.yaml"), podManifest("b", "x"))
	waitUpdate(t, updates, "second pod", func(u Update) bool { return podNames(u) == "default/a-n,default/b-n" })
}

func TestWatchDirSendsOnlyChanges(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), podManifest("a", "x"))
	updates := startWatchDir(t, dir, 20*time.Millisecond)
	waitUpdate(t, updates, "initial update", func(Update) bool { return true })
	// Many resyncs, a rewrite with the same content and a dotfile: none changes the set.
	writeFile(t, filepath.Join(dir, "a.yaml"), podManifest("a", "x"))
	writeFile(t, filepath.Join(dir, ".a.yaml.swp"), "junk")
	noUpdate(t, updates, 500*time.Millisecond)
}

func TestWatchDirResyncFindsMissedChanges(t *testing.T) {
	// A change the watch cannot see (here: the watch is on a directory replaced under it, with
	// no parent event because the whole parent is renamed) is found at the next resync.
	root := t.TempDir()
	parent := filepath.Join(root, "etc")
	dir := filepath.Join(parent, "manifests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	updates := startWatchDir(t, dir, 100*time.Millisecond)
	waitUpdate(t, updates, "initial update", func(Update) bool { return true })

	staged := filepath.Join(root, "etc.new")
	if err := os.MkdirAll(filepath.Join(staged, "manifests"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(staged, "manifests", "a.yaml"), podManifest("a", "x"))
	if err := os.Rename(parent, filepath.Join(root, "etc.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(staged, parent); err != nil {
		t.Fatal(err)
	}
	waitUpdate(t, updates, "pod of the replaced tree", func(u Update) bool { return podNames(u) == "default/a-n" })
	writeFile(t, filepath.Join(dir, "b.yaml"), podManifest("b", "x"))
	waitUpdate(t, updates, "later change", func(u Update) bool { return podNames(u) == "default/a-n,default/b-n" })
}

func TestWatchDirStopsWhileNobodyReads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- WatchDir(ctx, t.TempDir(), "n", noResync, make(chan Update)) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WatchDir: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("WatchDir stayed blocked on its send after its context ended")
	}
}

func TestWatchDirRejectsBadResync(t *testing.T) {
	if err := WatchDir(context.Background(), t.TempDir(), "n", 0, make(chan Update)); err == nil {
		t.Fatal("a zero resync period was accepted")
	}
}
