package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Server-side apply as against a kube-apiserver: apply creates, then merges by field ownership;
// a second manager's conflicting change is refused until forced; kubectl label's change is its own
// and conflicts with a later apply of the field. A label change restarts nothing.
func TestKubectlServerSideApply(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, bin string, ta *testAgent, kc string) {
		dir := t.TempDir()
		write := func(name, labels string) string {
			t.Helper()
			path := filepath.Join(dir, name)
			body := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: ssa\n  labels:\n%s\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n    ports: [{containerPort: 8080}]\n", labels)
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			return path
		}
		pod := write("pod.yaml", "    app: web")
		steps := []step{
			{args: []string{"apply", "--server-side", "-f", pod}, want: []string{`^pod/ssa serverside-applied$`}},
			{args: []string{"wait", "--for=condition=Ready", "pod/ssa", "--timeout=60s"}, want: []string{`^pod/ssa condition met$`}},
		}
		for i, s := range steps {
			runStep(t, bin, kc, i, s)
		}
		started := ta.pod(t, "default", "ssa")

		pod = write("pod.yaml", "    app: web\n    tier: front")
		other := write("other.yaml", "    app: other")
		steps = []step{
			{args: []string{"apply", "--server-side", "-f", pod}, want: []string{`^pod/ssa serverside-applied$`}},
			{args: []string{"get", "pod", "ssa", "-L", "tier"}, want: []string{`(?m)^ssa +1/1 +Running +0 .* front$`}},
			{args: []string{"get", "pod", "ssa", "-o", "yaml", "--show-managed-fields"}, want: []string{
				`(?m)^    manager: kubectl$`, `(?m)^    operation: Apply$`, `f:tier: \{\}`, `f:containerPort: \{\}`,
			}},
			// Another manager may not take a field kubectl applied.
			{args: []string{"apply", "--server-side", "--field-manager=other", "-f", other}, wantErr: true, want: []string{
				`Apply failed with 1 conflict: conflict with "kubectl": \.metadata\.labels\.app`,
			}},
			{args: []string{"get", "pod", "ssa", "-L", "app"}, want: []string{`(?m) web$`}},
			{args: []string{"apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", other}, want: []string{`^pod/ssa serverside-applied$`}},
			{args: []string{"get", "pod", "ssa", "-L", "app"}, want: []string{`(?m) other$`}},
			// kubectl label's change is recorded for it: the next apply of that label conflicts, as
			// does the one other took by force.
			{args: []string{"label", "pod", "ssa", "tier=back", "--overwrite"}, want: []string{`^pod/ssa labeled$`}},
			{args: []string{"get", "pod", "ssa", "-o", "yaml", "--show-managed-fields"}, want: []string{`(?m)^    manager: kubectl-label$`, `(?m)^    operation: Update$`}},
			{args: []string{"apply", "--server-side", "-f", pod}, wantErr: true, want: []string{
				`Apply failed with 2 conflicts: conflicts with "kubectl-label" using v1:\n- \.metadata\.labels\.tier\nconflicts with "other":\n- \.metadata\.labels\.app`,
			}},
			// A label no applier manages is left alone.
			{args: []string{"label", "pod", "ssa", "extra=yes"}, want: []string{`^pod/ssa labeled$`}},
			{args: []string{"apply", "--server-side", "--force-conflicts", "-f", pod}, want: []string{`^pod/ssa serverside-applied$`}},
			{args: []string{"get", "pod", "ssa", "-L", "app,tier,extra"}, want: []string{`(?m) web +front +yes$`}},
			// A dry run changes nothing.
			{args: []string{"apply", "--server-side", "--dry-run=server", "-f", write("dry.yaml", "    app: dry\n    tier: front")}, want: []string{`^pod/ssa serverside-applied \(server dry run\)$`}},
			{args: []string{"get", "pod", "ssa", "-L", "app"}, want: []string{`(?m) web$`}},
		}
		for i, s := range steps {
			runStep(t, bin, kc, i+2, s)
		}

		// Only labels changed: the pod's spec and its container are as they were.
		now := ta.pod(t, "default", "ssa")
		if now.UID != started.UID || now.Generation != started.Generation {
			t.Errorf("pod uid %s generation %d, want %s and %d", now.UID, now.Generation, started.UID, started.Generation)
		}
		if len(now.Status.ContainerStatuses) != 1 || len(started.Status.ContainerStatuses) != 1 ||
			now.Status.ContainerStatuses[0].ContainerID != started.Status.ContainerStatuses[0].ContainerID ||
			now.Status.ContainerStatuses[0].RestartCount != 0 || now.Status.ContainerStatuses[0].State.Running == nil {
			t.Errorf("container was %s, is %s", describeContainers(started), describeContainers(now))
		}
	})
}
