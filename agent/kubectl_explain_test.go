package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// kubectl explain prints the kube-apiserver's descriptions and field types, from the OpenAPI
// documents; a kind podagent does not serve fails on the client, as against a cluster without it.
func TestKubectlExplain(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, bin string, _ *testAgent, kc string) {
		for _, tc := range []struct {
			args []string
			// want are regular expressions the output must match, its runs of blanks made one space
			// so that kubectl's wrapping of descriptions does not matter.
			want    []string
			wantErr bool
		}{
			{args: []string{"explain", "pods"}, want: []string{
				`KIND: Pod VERSION: v1 DESCRIPTION: Pod is a collection of containers that can run on a host\. This resource is created by clients and scheduled onto hosts\.`,
				`FIELDS: apiVersion <string> `, `kind <string> `, `metadata <ObjectMeta> `,
				`spec <PodSpec> Specification of the desired behavior of the pod\.`, `status <PodStatus> `,
			}},
			{args: []string{"explain", "pod.spec"}, want: []string{
				`FIELD: spec <PodSpec> DESCRIPTION: Specification of the desired behavior of the pod\.`,
				`containers <\[\]Container> -required- List of containers belonging to the pod\.`,
				`restartPolicy <string> `, `nodeName <string> `,
			}},
			{args: []string{"explain", "pod.spec.containers.ports"}, want: []string{
				`FIELD: ports <\[\]ContainerPort> DESCRIPTION: List of ports to expose from the container\.`,
				`containerPort <integer> -required- Number of port to expose on the pod's IP address\.`,
				`hostPort <integer> `, `name <string> `, `protocol <string> `,
			}},
			{args: []string{"explain", "nodes"}, want: []string{
				`KIND: Node VERSION: v1 DESCRIPTION: Node is a worker node in Kubernetes\. Each node will have a unique identifier in the cache \(i\.e\. in etcd\)\.`,
				`spec <NodeSpec> `, `status <NodeStatus> `,
			}},
			{args: []string{"explain", "namespaces"}, want: []string{
				`KIND: Namespace VERSION: v1 DESCRIPTION: Namespace provides a scope for Names\. Use of multiple namespaces is optional\.`,
				`spec <NamespaceSpec> `, `status <NamespaceStatus> `,
			}},
			{args: []string{"explain", "events", "--api-version=v1"}, want: []string{
				`KIND: Event VERSION: v1 DESCRIPTION: Event is a report of an event somewhere in the cluster\.`,
				`involvedObject <ObjectReference> -required- `,
			}},
			{args: []string{"explain", "pods", "--recursive"}, want: []string{
				`KIND: Pod VERSION: v1`, `containers <\[\]Container> -required- `, `containerPort <integer> -required- `,
				`matchLabelKeys <\[\]string> `,
			}},
			{args: []string{"explain", "services"}, wantErr: true, want: []string{
				`the server doesn't have a resource type "services"`,
			}},
			// The server still answers.
			{args: []string{"get", "namespaces", "default"}, want: []string{`default Active`}},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kc}, tc.args...)...)
			cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(kc))
			raw, err := cmd.CombinedOutput()
			cancel()
			out := strings.Join(strings.Fields(string(raw)), " ")
			if (err != nil) != tc.wantErr {
				t.Errorf("kubectl %s: exit error %v, want failure %v\n%s", strings.Join(tc.args, " "), err, tc.wantErr, raw)
				continue
			}
			for _, w := range tc.want {
				if !regexp.MustCompile(w).MatchString(out) {
					t.Errorf("kubectl %s: output does not match %q\n%s", strings.Join(tc.args, " "), w, raw)
				}
			}
		}
	})
}

// Client-side apply computes its strategic merge patch from the served schemas, as against a
// real cluster: the second apply changes a label and the image without a warning, and a change
// the kube-apiserver forbids (the command) is refused with its message.
func TestKubectlApplyWithSchemas(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, bin string, _ *testAgent, kc string) {
		dir := t.TempDir()
		manifest := func(name, label, image, arg string) string {
			p := filepath.Join(dir, name)
			body := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\n  labels:\n    tier: " + label +
				"\nspec:\n  containers:\n  - name: c\n    image: " + image + "\n    command: [sleep, '" + arg + "']\n"
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		for i, s := range []step{
			{args: []string{"apply", "-f", manifest("app1.yaml", "front", "busybox", "3600")}, want: []string{`^pod/app created$`}},
			// ^...$ on the whole output: no warning that the patch could not be computed.
			{args: []string{"apply", "-f", manifest("app2.yaml", "back", "docker.io/library/busybox:latest", "3600")}, want: []string{`^pod/app configured$`}},
			{args: []string{"get", "pod", "app", "-o", "jsonpath={.metadata.labels.tier} {.spec.containers[0].image}"},
				want: []string{`^back docker.io/library/busybox:latest$`}},
			{args: []string{"apply", "-f", manifest("app3.yaml", "back", "docker.io/library/busybox:latest", "60")}, wantErr: true,
				want: []string{`The Pod "app" is invalid: spec: Forbidden: pod updates may not change fields other than`}},
		} {
			runStep(t, bin, kc, i, s)
		}
	})
}
