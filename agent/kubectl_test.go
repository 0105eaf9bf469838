package agent_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/podagent/podagent/internal/testenv"
)

// kubectlVersions are the kubectl releases the walkthrough runs with: the oldest and newest the
// project supports.
var kubectlVersions = []string{"1.27", "1.33"}

// forEachKubectl runs test once per kubectl version, each against an agent of its own serving its
// API, with the kubeconfig for it.
func forEachKubectl(t *testing.T, test func(t *testing.T, bin string, ta *testAgent, kubeconfig string)) {
	for _, v := range kubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			bin := kubectlBinary(t, v)
			ta := startAgent(t, "node")
			test(t, bin, ta, serveAPI(t, ta))
		})
	}
}

func kubectlBinary(t *testing.T, version string) string {
	t.Helper()
	bin := "/usr/lib/google-cloud-sdk/bin/kubectl." + version
	if _, err := os.Stat(bin); err != nil {
		testenv.Missing(t, fmt.Sprintf("kubectl %s is not installed at %s", version, bin))
	}
	return bin
}

// step is one kubectl command of the walkthrough and what its output must show.
type step struct {
	args []string
	// want are regular expressions the output must match, line by line where they hold "^".
	want []string
	// wantErr: the command must fail (its output still checked against want).
	wantErr bool
	// until: retry until the output matches (the state converges), within a deadline.
	until bool
}

// The seed chapter's commands, in order, with the output each must give.
func seedWalkthrough(examples string) []step {
	f := func(name string) string { return filepath.Join(examples, name) }
	return []step{
		{args: []string{"create", "-f", f("kubia-manual.yaml")}, want: []string{`^pod/kubia-manual created$`}},
		{args: []string{"get", "pod", "kubia-manual", "-o", "yaml"}, until: true,
			want: []string{`(?m)^  phase: Running$`, `(?m)^  podIP: \d+\.\d+\.\d+\.\d+$`, `(?m)^  containerStatuses:$`, `(?m)ready: true`}},
		{args: []string{"logs", "kubia-manual"}, until: true, want: []string{`Kubia server starting`}},
		{args: []string{"logs", "kubia-manual", "-c", "kubia"}, want: []string{`Kubia server starting`}},
		{args: []string{"describe", "pod", "kubia-manual"}, until: true, want: []string{`(?m)^Status: +Running$`, `(?m)^IP: +\d+\.`,
			`(?m)^Events:`, `Normal +Scheduled +.* default-scheduler +Successfully assigned default/kubia-manual to node`,
			`Normal +Pulling +.* kubelet +Pulling image "luksa/kubia"`, `Normal +Created +.*Created container:? kubia`,
			`Normal +Started +.*Started container kubia`}},
		{args: []string{"get", "events"}, want: []string{`(?m)^LAST SEEN +TYPE +REASON +OBJECT +MESSAGE$`, `Normal +Started +pod/kubia-manual +Started container kubia`}},
		{args: []string{"create", "-f", f("kubia-manual-with-labels.yaml")}, want: []string{`^pod/kubia-manual-v2 created$`}},
		{args: []string{"get", "pod", "--show-labels"},
			want: []string{`(?m)^NAME +READY +STATUS +RESTARTS +AGE +LABELS$`, `(?m)^kubia-manual +\S+ +\S+ +0 +\S+ +<none>$`,
				`(?m)^kubia-manual-v2 +.* creation_method=manual,env=prod$`}},
		{args: []string{"get", "pod", "-L", "creation_method,env"},
			want: []string{`(?m)^NAME +READY +STATUS +RESTARTS +AGE +CREATION_METHOD +ENV$`, `(?m)^kubia-manual-v2 +.* manual +prod$`}},
		{args: []string{"label", "pod", "kubia-manual", "creation_method=manual"}, want: []string{`^pod/kubia-manual labeled$`}},
		{args: []string{"label", "pod", "kubia-manual-v2", "env=debug"}, wantErr: true, want: []string{`already has a value \(prod\)`}},
		{args: []string{"label", "pod", "kubia-manual-v2", "env=debug", "--overwrite"}, want: []string{`^pod/kubia-manual-v2 labeled$`}},
		{args: []string{"get", "pod", "-l", "env", "-o", "name"}, want: []string{`^pod/kubia-manual-v2$`}},
		{args: []string{"get", "pod", "-l", "!env", "-o", "name"}, want: []string{`^pod/kubia-manual$`}},
		{args: []string{"get", "pod", "-l", "env!=prod", "-o", "name"}, want: []string{`^pod/kubia-manual\npod/kubia-manual-v2$`}},
		{args: []string{"get", "pod", "-l", "env in (prod,debug)", "-o", "name"}, want: []string{`^pod/kubia-manual-v2$`}},
		{args: []string{"get", "pod", "-l", "env notin (prod,devel)", "-o", "name"}, want: []string{`^pod/kubia-manual\npod/kubia-manual-v2$`}},
		{args: []string{"create", "-f", f("kubia-gpu.yaml")}, want: []string{`^pod/kubia-gpu created$`}},
		{args: []string{"get", "pod", "kubia-gpu"}, until: true, want: []string{`(?m)^kubia-gpu +0/1 +Pending `}},
		{args: []string{"get", "pod", "kubia-gpu", "-o", "jsonpath={.status.conditions[0].reason}"}, until: true, want: []string{`^Unschedulable$`}},
		{args: []string{"label", "node", "node", "gpu=true"}, want: []string{`^node/node labeled$`}},
		{args: []string{"get", "pod", "kubia-gpu"}, until: true, want: []string{`(?m)^kubia-gpu +1/1 +Running `}},
		{args: []string{"annotate", "pod", "kubia-manual", "mycompany.com/someannotation=foo bar"}, want: []string{`^pod/kubia-manual annotated?$`}},
		{args: []string{"get", "pod", "kubia-manual", "-o", "jsonpath={.metadata.annotations}"}, want: []string{`"mycompany.com/someannotation":"foo bar"`}},
		{args: []string{"get", "ns"}, want: []string{`(?m)^NAME +STATUS +AGE$`, `(?m)^default +Active `, `(?m)^kube-node-lease +Active `,
			`(?m)^kube-public +Active `, `(?m)^kube-system +Active `}},
		{args: []string{"get", "pod", "--namespace", "kube-system"}, want: []string{`No resources found in kube-system namespace.`}},
		{args: []string{"create", "-f", f("custom-namespace.yaml")}, want: []string{`^namespace/custom-namespace created$`}},
		{args: []string{"create", "namespace", "custom-namespace2"}, want: []string{`^namespace/custom-namespace2 created$`}},
		{args: []string{"create", "-f", f("kubia-manual.yaml"), "-n", "custom-namespace"}, want: []string{`^pod/kubia-manual created$`}},
		{args: []string{"get", "pod", "-n", "custom-namespace"}, until: true, want: []string{`(?m)^kubia-manual +1/1 +Running `}},
		{args: []string{"delete", "pod", "kubia-gpu"}, want: []string{`^pod "kubia-gpu" deleted`}},
		{args: []string{"delete", "pod", "-l", "creation_method=manual"}, want: []string{`pod "kubia-manual" deleted`, `pod "kubia-manual-v2" deleted`}},
		{args: []string{"delete", "ns", "custom-namespace"}, want: []string{`^namespace "custom-namespace" deleted`}},
		{args: []string{"get", "ns", "custom-namespace"}, until: true, wantErr: true, want: []string{`namespaces "custom-namespace" not found`}},
		{args: []string{"run", "kubia", "--image=luksa/kubia", "--port=8080"}, want: []string{`^pod/kubia created$`}},
		{args: []string{"delete", "pod", "--all"}, want: []string{`^pod "kubia" deleted`}},
		{args: []string{"run", "kubia2", "--image=luksa/kubia"}, want: []string{`^pod/kubia2 created$`}},
		{args: []string{"delete", "all", "--all"}, want: []string{`^pod "kubia2" deleted`}},
		{args: []string{"get", "pods"}, until: true, want: []string{`No resources found in default namespace.`}},
	}
}

// The acceptance walkthrough: every command of the seed chapter, in order, with kubectl 1.27 and
// 1.33 against a freshly started agent.
func TestKubectlSeedWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("long: skipped with -short")
	}
	examples, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	forEachKubectl(t, func(t *testing.T, bin string, _ *testAgent, kc string) {
		for i, s := range seedWalkthrough(examples) {
			runStep(t, bin, kc, i, s)
			if strings.Join(s.args, " ") == "logs kubia-manual -c kubia" {
				// The seed's next command: kubectl port-forward kubia-manual 8888:8080, then
				// curl localhost:8888 (a free local port here, so tests never collide).
				checkKubiaPortForward(t, bin, kc)
			}
		}
	})
}

// checkKubiaPortForward forwards a free local port to kubia-manual's 8080 and checks that the app
// answers through it.
func checkKubiaPortForward(t *testing.T, bin, kubeconfig string) {
	t.Helper()
	port := portForward(t, bin, kubeconfig, "kubia-manual", "8080")
	resp, err := http.Get("http://127.0.0.1:" + port)
	if err != nil {
		t.Fatalf("GET through port-forward: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "You've hit kubia-manual\n" {
		t.Fatalf("through port-forward: %q, want \"You've hit kubia-manual\"", body)
	}
}

func runStep(t *testing.T, bin, kubeconfig string, i int, s step) {
	t.Helper()
	check := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig}, s.args...)...)
		cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(kubeconfig))
		raw, err := cmd.CombinedOutput()
		out := strings.TrimSpace(string(raw))
		if (err != nil) != s.wantErr {
			return out, fmt.Errorf("exit error %v, want failure %v", err, s.wantErr)
		}
		for _, w := range s.want {
			if !regexp.MustCompile(w).MatchString(out) {
				return out, fmt.Errorf("output does not match %q", w)
			}
		}
		return out, nil
	}
	if !s.until {
		if out, err := check(); err != nil {
			t.Fatalf("step %d: kubectl %s: %v\n%s", i, strings.Join(s.args, " "), err, out)
		}
		return
	}
	var out string
	testenv.Eventually(t, 60*time.Second, func() error {
		var err error
		out, err = check()
		if err != nil {
			return fmt.Errorf("step %d: kubectl %s: %v\n%s", i, strings.Join(s.args, " "), err, out)
		}
		return nil
	})
}

// serveAPI is the admin kubeconfig of the agent's embedded API, which it serves over HTTPS on
// 127.0.0.1 (rewritten with the new port when the agent restarts).
func serveAPI(t *testing.T, ta *testAgent) string {
	t.Helper()
	return ta.n.ControlPlane.Listener().Kubeconfig
}
