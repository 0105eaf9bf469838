package agent_test

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podagent/podagent/agent"
	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/logs"
)

// Issue 4, acceptance 1: the agent is killed with SIGKILL three times while a container writes a
// numbered line every millisecond to stdout and every 10 ms to stderr. The log holds every number
// exactly once, in order per stream, and the container was never restarted: the log driver
// belongs to the shim, not to the agent.
func TestLogsSurviveAgentKills(t *testing.T) {
	if testing.Short() {
		t.Skip("long: skipped with -short")
	}
	const outLines, errLines = 4000, 400
	bin := agentBinary(t)
	cfg := testConfig(t, "node")
	rt := testenv.NewRuntimeWith(t, agent.RuntimeConfig(cfg), agent.NetworkOptions(cfg))
	script := fmt.Sprintf(`(i=0; while [ $i -lt %d ]; do echo "err $i" >&2; i=$((i+1)); usleep 10000; done) &
i=0; while [ $i -lt %d ]; do echo "out $i"; i=$((i+1)); usleep 1000; done; wait; sleep 3600`, errLines, outLines)
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: counter
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: count
    image: busybox
    command: ["sh", "-c", %q]
`, script)
	proc := runAgent(t, bin, cfg)
	writeFile(t, cfg.ManifestDir, "counter.yaml", manifest)

	var ctrID string
	testenv.Eventually(t, 30*time.Second, func() error {
		ctrs, err := rt.ListContainers(rt.Ctx)
		if err != nil || len(ctrs) != 1 {
			return fmt.Errorf("%d containers (%v)", len(ctrs), err)
		}
		ctrID = ctrs[0].ID
		return nil
	})
	for range 3 {
		time.Sleep(500 * time.Millisecond) // the container keeps writing meanwhile
		proc.restart(syscall.SIGKILL)
	}

	ctrs, err := rt.ListContainers(rt.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	pod := ctrs[0].Pod
	path := logs.Path(cfg.LogDir, pod.Namespace, pod.Name, pod.UID, "count", 0)
	record := regexp.MustCompile(`^\S+ (stdout|stderr) F (out|err) (\d+)$`)
	testenv.Eventually(t, 60*time.Second, func() error {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		next := map[string]int{"out": 0, "err": 0}
		for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
			m := record.FindStringSubmatch(line)
			if m == nil {
				return fmt.Errorf("malformed record %q", line)
			}
			if (m[1] == "stdout") != (m[2] == "out") {
				return fmt.Errorf("record %q on the wrong stream", line)
			}
			n, _ := strconv.Atoi(m[3])
			if n != next[m[2]] {
				t.Fatalf("%s: got %d, want %d: a line lost or repeated", m[1], n, next[m[2]])
			}
			next[m[2]]++
		}
		if next["out"] != outLines || next["err"] != errLines {
			return fmt.Errorf("so far %d stdout and %d stderr lines", next["out"], next["err"])
		}
		return nil
	})
	ctrs, err = rt.ListContainers(rt.Ctx)
	if err != nil || len(ctrs) != 1 || ctrs[0].ID != ctrID || ctrs[0].RestartCount != 0 {
		t.Fatalf("the container was replaced or restarted: %+v (%v)", ctrs, err)
	}
}

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	tmp := dir + "/." + name + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir+"/"+name); err != nil {
		t.Fatal(err)
	}
}
