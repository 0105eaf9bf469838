package source

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/podagent/podagent/internal/keys"
)

func TestDirStateScan(t *testing.T) {
	const broken = "apiVersion: v1\nkind: Pod\nmetadata: [\n"
	type step struct {
		do       func(t *testing.T, dir string)
		wantPods string   // namespace/name, sorted
		wantErrs []string // base names of the files with an error
	}
	write := func(name, content string) func(*testing.T, string) {
		return func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, name), content) }
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"missing directory is empty", []step{
			{do: func(t *testing.T, dir string) { os.Remove(dir) }},
		}},
		{"dotfiles, subdirectories and dangling symlinks are skipped", []step{
			{do: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, ".hidden.yaml"), podManifest("hidden", "x"))
				if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, "sub", "p.yaml"), podManifest("sub", "x"))
				if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling.yaml")); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, "web.yaml"), podManifest("web", "x"))
			}, wantPods: "default/web-n"},
		}},
		{"symlink to a file is read", []step{
			{do: func(t *testing.T, dir string) {
				target := filepath.Join(t.TempDir(), "target.yaml")
				writeFile(t, target, podManifest("linked", "x"))
				if err := os.Symlink(target, filepath.Join(dir, "linked.yaml")); err != nil {
					t.Fatal(err)
				}
			}, wantPods: "default/linked-n"},
		}},
		{"broken edit keeps the last good pods until fixed", []step{
			{do: write("a.yaml", podManifest("a", "v1")+"---\n"+podManifest("b", "v1")), wantPods: "default/a-n,default/b-n"},
			{do: write("a.yaml", broken), wantPods: "default/a-n,default/b-n", wantErrs: []string{"a.yaml"}},
			{do: write("a.yaml", podManifest("a", "v2")), wantPods: "default/a-n"},
		}},
		{"emptied file keeps its pods: a writer truncated it and has not written yet", []step{
			{do: write("a.yaml", podManifest("a", "v1")), wantPods: "default/a-n"},
			{do: write("a.yaml", ""), wantPods: "default/a-n", wantErrs: []string{"a.yaml"}},
			{do: write("a.yaml", "# disabled\n")},
		}},
		{"new empty file is no error", []step{
			{do: write("a.yaml", "")},
		}},
		{"broken new file has no pods", []step{
			{do: write("a.yaml", broken), wantErrs: []string{"a.yaml"}},
		}},
		{"removing a broken file removes its last good pods", []step{
			{do: write("a.yaml", podManifest("a", "v1")), wantPods: "default/a-n"},
			{do: write("a.yaml", broken), wantPods: "default/a-n", wantErrs: []string{"a.yaml"}},
			{do: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "a.yaml")) }},
		}},
		{"duplicate across files: first path wins, the other is reported", []step{
			{do: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "b.yaml"), podManifest("web", "from-b"))
				writeFile(t, filepath.Join(dir, "a.yaml"), podManifest("web", "from-a"))
			}, wantPods: "default/web-n", wantErrs: []string{"b.yaml"}},
		}},
		{"unreadable directory keeps everything", []step{
			{do: write("a.yaml", podManifest("a", "v1")), wantPods: "default/a-n"},
			{do: func(t *testing.T, dir string) {
				// Replace the directory by a file: reading it fails with an error other than
				// not-exist, even as root (which ignores permission bits).
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				writeFile(t, dir, "not a directory")
			}, wantPods: "default/a-n", wantErrs: []string{"manifests"}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "manifests")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			d := newDirState(dir, "n")
			for i, s := range tc.steps {
				s.do(t, dir)
				u := d.scan()
				if got := podNames(u); got != s.wantPods {
					t.Errorf("step %d: pods %q, want %q", i, got, s.wantPods)
				}
				var errs []string
				for path := range u.Errs {
					errs = append(errs, filepath.Base(path))
				}
				sort.Strings(errs)
				if strings.Join(errs, ",") != strings.Join(s.wantErrs, ",") {
					t.Errorf("step %d: errors in %v, want %v (%s)", i, errs, s.wantErrs, describe(u))
				}
			}
		})
	}
}

func TestDirStateBrokenEditKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.yaml")
	writeFile(t, path, podManifest("a", "v1"))
	d := newDirState(dir, "n")
	good := d.scan()
	writeFile(t, path, strings.Replace(podManifest("a", "v2"), "image:", "imagee:", 1))
	u := d.scan()
	if got := podImage(u, "default", "a-n"); got != "v1" {
		t.Errorf("image %q, want the last good v1", got)
	}
	if u.Pods[0].UID != good.Pods[0].UID || u.Pods[0].Annotations[keys.ConfigHashAnnotation] != good.Pods[0].Annotations[keys.ConfigHashAnnotation] {
		t.Error("the kept pod differs from the last good one")
	}
	if err := u.Errs[path]; err == nil || !strings.Contains(err.Error(), `unknown field "imagee"`) {
		t.Errorf("errs[%s] = %v, want the unknown field", path, err)
	}
}
