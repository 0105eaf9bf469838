package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/podagent/podagent/apiserver/store"
)

// Bad input gets a 4xx Status that names what is wrong, and nothing stored changes.
func TestKubectlBadInput(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, bin string, ta *testAgent, kc string) {
		dir := t.TempDir()
		manifest := func(name, body string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		good := manifest("good.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: good\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n")
		runStep(t, bin, kc, 0, step{args: []string{"create", "-f", good}, want: []string{`^pod/good created$`}})
		ta.waitPod(t, "default", "good", 60*time.Second, running)
		before := snapshot(t, ta)
		for i, s := range []step{
			{args: []string{"create", "-f", manifest("unknown.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: u\nspec:\n  containers:\n  - name: c\n    image: busybox\n    bogusField: 1\n")},
				wantErr: true, want: []string{`unknown field "spec.containers\[0\].bogusField"`}},
			{args: []string{"create", "-f", manifest("badname.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n  containers:\n  - name: c\n    image: busybox\n")},
				wantErr: true, want: []string{`The Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"`}},
			{args: []string{"create", "-f", manifest("badlabel.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: l\n  labels:\n    env: \"-bad-\"\nspec:\n  containers:\n  - name: c\n    image: busybox\n")},
				wantErr: true, want: []string{`metadata.labels: Invalid value: "-bad-"`}},
			{args: []string{"get", "pods", "-l", "env in (prod"}, wantErr: true, want: []string{`(?i)unable to parse requirement|found '', expected: ',' or '\)'`}},
			{args: []string{"create", "-f", good, "-n", "nope"}, wantErr: true, want: []string{`namespaces "nope" not found`}},
			{args: []string{"create", "-f", good}, wantErr: true, want: []string{`pods "good" already exists`}},
			{args: []string{"delete", "ns", "default"}, wantErr: true, want: []string{`(?i)forbidden: this namespace may not be deleted`}},
		} {
			runStep(t, bin, kc, i+1, s)
		}
		if after := snapshot(t, ta); after != before {
			t.Errorf("bad input changed what is stored:\nbefore %s\nafter  %s", before, after)
		}
	})
}

// snapshot names every stored pod and namespace with its resourceVersion.
func snapshot(t *testing.T, ta *testAgent) string {
	t.Helper()
	var out []string
	for _, res := range []string{store.Pods, store.Namespaces} {
		objs, _, err := ta.store().List(context.Background(), res, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			out = append(out, fmt.Sprintf("%s/%s/%s@%s", res, o.GetNamespace(), o.GetName(), o.GetResourceVersion()))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// Beyond the seed: apply (twice), wait, get -w, logs -f and logs --previous.
func TestKubectlBeyondSeed(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, bin string, ta *testAgent, kc string) {
		dir := t.TempDir()
		app := filepath.Join(dir, "app.yaml")
		write := func(label string) {
			body := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\n  labels:\n    tier: %s\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'i=0; while true; do echo line $i; i=$((i+1)); usleep 200000; done']\n", label)
			if err := os.WriteFile(app, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("front")
		runStep(t, bin, kc, 0, step{args: []string{"apply", "-f", app}, want: []string{`^pod/app created$`}})
		runStep(t, bin, kc, 1, step{args: []string{"wait", "--for=condition=Ready", "pod/app", "--timeout=60s"}, want: []string{`^pod/app condition met$`}})

		// get -w sees the change the second apply makes.
		lines := startKubectl(t, bin, kc, "get", "pods", "-w", "-L", "tier")
		expectLine(t, lines, "front")
		write("back")
		runStep(t, bin, kc, 2, step{args: []string{"apply", "-f", app}, want: []string{`^pod/app configured$`}})
		expectLine(t, lines, "back")

		// logs -f follows the container's output as it comes.
		fl := startKubectl(t, bin, kc, "logs", "-f", "app", "--tail", "1")
		var first, last int
		for i := 0; i < 4 && fl.Scan(); i++ {
			n := 0
			fmt.Sscanf(fl.Text(), "line %d", &n)
			if i == 0 {
				first = n
			}
			last = n
		}
		if last != first+3 {
			t.Fatalf("logs -f: lines %d..%d, want 4 consecutive (%v)", first, last, fl.Err())
		}

		// logs --previous shows the instance before a restart.
		crash := filepath.Join(dir, "crash.yaml")
		if err := os.WriteFile(crash, []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: crash\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'echo bye; exit 1']\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		runStep(t, bin, kc, 3, step{args: []string{"create", "-f", crash}, want: []string{`^pod/crash created$`}})
		runStep(t, bin, kc, 4, step{args: []string{"get", "pod", "crash"}, until: true, want: []string{`(?m)^crash +0/1 +CrashLoopBackOff +1 \(`}})
		runStep(t, bin, kc, 5, step{args: []string{"logs", "crash", "--previous"}, want: []string{`^bye$`}})
	})
}

func expectLine(t *testing.T, s *bufio.Scanner, substr string) {
	t.Helper()
	for s.Scan() {
		if strings.Contains(s.Text(), substr) {
			return
		}
	}
	t.Fatalf("no line with %q (%v)", substr, s.Err())
}

// startKubectl runs a kubectl command that keeps going (a watch, a follow) until the test ends,
// and returns its output line by line.
func startKubectl(t *testing.T, bin, kubeconfig string, args ...string) *bufio.Scanner {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(kubeconfig))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return bufio.NewScanner(out)
}

// A static pod's mirror is read-only through the API: its manifest on the node defines it.
func TestKubectlMirrorPodReadOnly(t *testing.T) {
	bin := kubectlBinary(t, kubectlVersions[len(kubectlVersions)-1])
	ta := startAgent(t, "node")
	kc := serveAPI(t, ta)
	ta.writeManifest(t, "web.yaml", webPod)
	ta.waitPod(t, "default", "web-node", 60*time.Second, running)
	for i, s := range []step{
		{args: []string{"get", "pod", "web-node", "-o", "jsonpath={.metadata.annotations.kubernetes\\.io/config\\.source}"}, want: []string{`^file$`}},
		{args: []string{"delete", "pod", "web-node"}, wantErr: true, want: []string{`(?i)forbidden: .*mirror of a static pod .*change or remove its manifest`}},
		{args: []string{"label", "pod", "web-node", "x=y"}, wantErr: true, want: []string{`(?i)forbidden: .*mirror of a static pod`}},
		{args: []string{"get", "pod", "web-node"}, want: []string{`(?m)^web-node +1/1 +Running `}},
	} {
		runStep(t, bin, kc, i, s)
	}
}
