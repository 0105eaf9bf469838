package runtime_test

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/logs"
	"github.com/podagent/podagent/runtime"
)

// A container's stdout and stderr reach its log file in the CRI format, written by the log driver
// the shim runs, at the kubelet's path; a last line without a newline is written when the stream
// ends, as containerd's CRI does.
func TestContainerLogIsCRIFormat(t *testing.T) {
	rt := testenv.NewRuntime(t)
	pod := newPod("talker", busybox("talk", "sh", "-c", "echo hello; echo oops >&2; printf 'no newline'"))
	rp, err := rt.RunPod(rt.Ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	// The shim closes its end of the pipes when the exited task is deleted (reaped): only then
	// does the driver see the end of the streams.
	id := rp.Containers[0].ID
	testenv.Eventually(t, 10*time.Second, func() error {
		ctrs, err := rt.PodContainers(rt.Ctx, string(pod.UID))
		if err != nil || len(ctrs) != 1 || ctrs[0].State != runtime.ContainerExited {
			return fmt.Errorf("container not exited yet (%v)", err)
		}
		return nil
	})
	if err := rt.StopContainer(rt.Ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	path := logs.Path(rt.Config.LogDir, pod.Namespace, pod.Name, string(pod.UID), "talk", 0)
	record := regexp.MustCompile(`^(\S+) (stdout|stderr) ([PF]) (.*)$`)
	var got []string
	testenv.Eventually(t, 10*time.Second, func() error {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got = nil
		for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
			m := record.FindStringSubmatch(line)
			if m == nil {
				return fmt.Errorf("line %q is not a CRI log record", line)
			}
			if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
				return fmt.Errorf("line %q: timestamp: %v", line, err)
			}
			got = append(got, m[2]+" "+m[4])
		}
		if len(got) < 3 {
			return fmt.Errorf("log holds %q so far", got)
		}
		return nil
	})
	want := map[string]bool{"stdout hello": true, "stderr oops": true}
	for _, g := range got[:2] {
		if !want[g] {
			t.Errorf("log records %q, want stdout hello and stderr oops", got)
		}
	}
	if got[2] != "stdout no newline" {
		t.Errorf("last record %q, want the line without a newline", got[2])
	}
}
