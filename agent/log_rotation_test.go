package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podagent/podagent/logs"
	"github.com/podagent/podagent/runtime"
)

// Issue 4, acceptances 2 and 4: with a small rotation size the log keeps the configured number of
// files, a follower reads across the rotations without losing or repeating a line, and a line of
// 100 KiB comes back intact.
func TestLogRotationAndFollow(t *testing.T) {
	const lines = 6000
	cfg := testConfig(t, "node")
	// About 1300 lines a file, so some 6 rotations, the long line across two files; the lines
	// come at most one every half millisecond, a pace a follower keeps up with (one that falls
	// more than the kept files behind loses lines, as under the kubelet).
	cfg.ContainerLogMaxSize, cfg.ContainerLogMaxFiles = 64<<10, 3
	ta := startAgentWith(t, cfg)
	srv := httptest.NewServer(newAPI(t, ta))
	defer srv.Close()
	// The container waits for the follower to be there, then writes a long line and numbered ones.
	script := fmt.Sprintf(`while [ ! -e /tmp/go ]; do usleep 10000; done
head -c 102400 /dev/zero | tr '\0' x; echo
i=0; while [ $i -lt %d ]; do echo "line $i"; i=$((i+1)); usleep 500; done; sleep 3600`, lines)
	p := ta.create(t, newPod("rotor", busybox("r", "sh", "-c", script)))
	ta.waitPod(t, "default", "rotor", 30*time.Second, running)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/namespaces/default/pods/rotor/log?follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("follow: %s", resp.Status)
	}
	ctrs := ta.runtimeContainers(t, string(p.UID))
	if out, code := execIn(t, ta, ctrs[0].ID, "touch", "/tmp/go"); code != 0 {
		t.Fatalf("touch /tmp/go: %s", out)
	}
	r := bufio.NewReaderSize(resp.Body, 256<<10)
	long, err := r.ReadString('\n')
	if err != nil || long != strings.Repeat("x", 102400)+"\n" {
		t.Fatalf("the 100 KiB line came back as %d bytes (%v)", len(long), err)
	}
	for i := range lines {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after line %d: %v", i-1, err)
		}
		if l != fmt.Sprintf("line %d\n", i) {
			t.Fatalf("got %q, want line %d: lost or repeated across a rotation", l, i)
		}
	}
	cancel()

	dir := filepath.Dir(logs.Path(cfg.LogDir, "default", "rotor", string(p.UID), "r", 0))
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		var names []string
		for _, f := range files {
			names = append(names, f.Name())
		}
		t.Errorf("log files %v, want 3 (the rotation limit)", names)
	}
}

func execIn(t *testing.T, ta *testAgent, id string, cmd ...string) (string, int) {
	t.Helper()
	var out strings.Builder
	code, err := ta.rt.Exec(ta.rt.Ctx, id, runtimeExecOptions(cmd, &out))
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	return out.String(), code
}

func runtimeExecOptions(cmd []string, out *strings.Builder) runtime.ExecOptions {
	return runtime.ExecOptions{Cmd: cmd, Stdout: out, Stderr: out}
}
