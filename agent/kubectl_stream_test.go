package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podagent/podagent/internal/testenv"
)

// streamPods starts the pods the exec and port-forward tests reach: "shell", a busybox that
// sleeps, and "kubia", which answers HTTP on 8080.
func streamPods(t *testing.T, ta *testAgent) {
	t.Helper()
	ta.create(t, newPod("shell", busybox("shell", "sleep", "3600")))
	kubia := corev1.Container{Name: "kubia", Image: "luksa/kubia", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}
	ta.create(t, newPod("kubia", kubia))
	ta.waitPod(t, "default", "shell", 60*time.Second, running)
	ta.waitPod(t, "default", "kubia", 60*time.Second, running)
}

// kubectlRun runs kubectl with stdin and returns its stdout, stderr and exit code.
func kubectlRun(t *testing.T, bin, kubeconfig string, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(kubeconfig))
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		return stdout.String(), stderr.String(), exitErr.ExitCode()
	case err != nil:
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), 0
}

// kubectl exec and port-forward with the oldest and newest kubectl: 1.27 speaks SPDY only, 1.33
// first tries WebSockets and must fall back to SPDY.
func TestKubectlStreamExecPortForward(t *testing.T) {
	ta := startAgent(t, "node")
	kc := serveAPI(t, ta)
	streamPods(t, ta)
	for _, v := range kubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			bin := kubectlBinary(t, v)
			run := func(stdin io.Reader, args ...string) (string, string, int) {
				t.Helper()
				return kubectlRun(t, bin, kc, stdin, args...)
			}
			t.Run("exec hostname", func(t *testing.T) {
				start := time.Now()
				out, errOut, code := run(nil, "exec", "shell", "--", "hostname")
				if code != 0 || out != "shell\n" {
					t.Errorf("exit %d, stdout %q, stderr %q; want shell", code, out, errOut)
				}
				t.Logf("kubectl %s exec took %s", v, time.Since(start).Round(time.Millisecond))
			})
			t.Run("exec exit code", func(t *testing.T) {
				if out, errOut, code := run(nil, "exec", "shell", "--", "sh", "-c", "exit 3"); code != 3 {
					t.Errorf("exit %d (stdout %q, stderr %q), want 3", code, out, errOut)
				}
			})
			t.Run("exec stdout and stderr", func(t *testing.T) {
				out, errOut, code := run(nil, "exec", "shell", "-c", "shell", "--", "sh", "-c", "echo out; echo err >&2")
				if code != 0 || out != "out\n" || errOut != "err\n" {
					t.Errorf("exit %d, stdout %q, stderr %q; want out, err", code, out, errOut)
				}
			})
			t.Run("exec stdin", func(t *testing.T) {
				out, errOut, code := run(strings.NewReader("hello\nworld\n"), "exec", "-i", "shell", "--", "cat")
				if code != 0 || out != "hello\nworld\n" {
					t.Errorf("exit %d, stdout %q, stderr %q; want the input back", code, out, errOut)
				}
				// A MiB of input all arrives, and its end reaches the command.
				big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
				out, errOut, code = run(bytes.NewReader(big), "exec", "-i", "shell", "--", "wc", "-c")
				if code != 0 || strings.TrimSpace(out) != fmt.Sprint(len(big)) {
					t.Errorf("wc -c of %d bytes: exit %d, stdout %q, stderr %q", len(big), code, out, errOut)
				}
			})
			t.Run("exec tty", func(t *testing.T) {
				script, err := exec.LookPath("script")
				if err != nil {
					testenv.Missing(t, "script(1) is not installed: no terminal for kubectl exec -t")
				}
				line := fmt.Sprintf("%s --kubeconfig %s exec -ti shell -- tty", bin, kc)
				cmd := exec.Command(script, "-qec", line, "/dev/null")
				cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(kc))
				cmd.Stdin = strings.NewReader("")
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.Contains(string(out), "/dev/pts/") {
					t.Errorf("kubectl exec -ti shell -- tty: %v, output %q; want a /dev/pts terminal", err, out)
				}
				// The client's terminal size reaches the command's terminal. The resize arrives
				// beside the start, so the command polls for it.
				poll := `for i in $(seq 100); do [ "$(stty size)" = "45 123" ] && { echo sized; exit 0; }; sleep 0.05; done; stty size; exit 1`
				line = fmt.Sprintf("stty cols 123 rows 45; %s --kubeconfig %s exec -ti shell -- sh -c '%s'", bin, kc, poll)
				cmd = exec.Command(script, "-qec", line, "/dev/null")
				cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(kc))
				cmd.Stdin = strings.NewReader("")
				out, err = cmd.CombinedOutput()
				if err != nil || !strings.Contains(string(out), "sized") {
					t.Errorf("kubectl exec -ti in a 123x45 terminal: %v, output %q; want the size 45 123", err, out)
				}
			})
			t.Run("exec abandoned", func(t *testing.T) {
				// kubectl killed while its command runs: the command is killed too, not left
				// running with nobody attached.
				cmd := exec.Command(bin, "--kubeconfig", kc, "exec", "shell", "--", "sh", "-c", "echo started; exec sleep 307")
				cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(kc))
				stdout, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				line, err := bufio.NewReader(stdout).ReadString('\n')
				if err != nil || line != "started\n" {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
					t.Fatalf("kubectl exec: first line %q, %v", line, err)
				}
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				testenv.Eventually(t, 15*time.Second, func() error {
					out, errOut, code := run(nil, "exec", "shell", "--", "ps")
					if code != 0 {
						return fmt.Errorf("ps: exit %d, %s", code, errOut)
					}
					if strings.Contains(out, "sleep 307") {
						return fmt.Errorf("the abandoned command still runs:\n%s", out)
					}
					return nil
				})
			})
			t.Run("exec errors", func(t *testing.T) {
				if _, errOut, code := run(nil, "exec", "missing", "--", "true"); code == 0 || !strings.Contains(errOut, `pods "missing" not found`) {
					t.Errorf("exec in a missing pod: exit %d, stderr %q", code, errOut)
				}
				if _, errOut, code := run(nil, "exec", "shell", "-c", "nosuch", "--", "true"); code == 0 || !strings.Contains(errOut, "nosuch") {
					t.Errorf("exec in a missing container: exit %d, stderr %q", code, errOut)
				}
				if _, errOut, code := run(nil, "attach", "shell"); code == 0 || !strings.Contains(errOut, "does not support attach") {
					t.Errorf("attach: exit %d, stderr %q; want the reason it is not supported", code, errOut)
				}
			})
			t.Run("port-forward", func(t *testing.T) {
				port := portForward(t, bin, kc, "kubia", "8080")
				client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				// Several connections through one port-forward session, each a stream pair of its own.
				for i := 0; i < 3; i++ {
					resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%s/", port))
					if err != nil {
						t.Fatalf("GET %d through the port-forward: %v", i, err)
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK || string(body) != "You've hit kubia\n" {
						t.Fatalf("GET %d through the port-forward: %d %q %v", i, resp.StatusCode, body, err)
					}
				}
			})
		})
	}
}

// portForward starts `kubectl port-forward pod :remote`, which picks a free local port, and returns
// that port once kubectl listens. The process is killed when the test ends.
func portForward(t *testing.T, bin, kubeconfig, pod, remote string) string {
	t.Helper()
	cmd := exec.Command(bin, "--kubeconfig", kubeconfig, "port-forward", "--address", "127.0.0.1", "pod/"+pod, ":"+remote)
	cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(kubeconfig))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	portc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+) -> ` + remote + `$`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				portc <- m[1]
			}
		}
		close(portc)
	}()
	select {
	case port, ok := <-portc:
		if !ok {
			t.Fatalf("kubectl port-forward ended without listening: %s", stderr.String())
		}
		return port
	case <-time.After(30 * time.Second):
		t.Fatalf("kubectl port-forward did not listen within 30s: %s", stderr.String())
	}
	return ""
}

// Before the upgrade, exec and port-forward answer Kubernetes Status errors; after it, the legacy
// WebSocket protocols work too (kubectl 1.33 in TestKubectlStreamExecPortForward speaks
// WebSocket v5 for exec and SPDY tunnelled in a WebSocket for port-forward).
func TestStreamAPI(t *testing.T) {
	ta := startAgent(t, "node")
	srv := httptest.NewServer(newAPI(t, ta))
	defer srv.Close()
	streamPods(t, ta)
	pods := srv.URL + "/api/v1/namespaces/default/pods/"
	spdy := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}, "X-Stream-Protocol-Version": {"v4.channel.k8s.io"}}
	pfSPDY := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}, "X-Stream-Protocol-Version": {"portforward.k8s.io"}}
	tests := []struct {
		name, path string
		header     http.Header
		code       int
		message    string
	}{
		{"exec in a missing pod", "missing/exec?command=true&stdout=true", spdy, 404, `pods "missing" not found`},
		{"exec in a missing container", "shell/exec?command=true&stdout=true&container=nosuch", spdy, 400, "nosuch"},
		{"exec without command", "shell/exec?stdout=true", spdy, 400, "at least one command"},
		{"exec without upgrade", "shell/exec?command=true&stdout=true", nil, 400, "Upgrade request required"},
		{"exec with an unknown SPDY protocol", "shell/exec?command=true&stdout=true", pfSPDY, 403, "unable to negotiate"},
		{"port-forward to a missing pod", "missing/portforward", pfSPDY, 404, `pods "missing" not found`},
		{"port-forward without upgrade", "kubia/portforward", nil, 400, "Upgrade request required"},
		{"port-forward with a bad port", "kubia/portforward?ports=99999", pfSPDY, 400, "ports"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(http.MethodPost, pods+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tt.header {
			req.Header[k] = v
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var st metav1.Status
		if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" || resp.StatusCode != tt.code || int(st.Code) != tt.code ||
			!strings.Contains(st.Message, tt.message) {
			t.Errorf("%s: %d %s, want a Status %d with message containing %q", tt.name, resp.StatusCode, body, tt.code, tt.message)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: answered in %s: a client falling back must not wait", tt.name, d)
		}
	}

	wsURL := "ws" + strings.TrimPrefix(pods, "http")
	dial := func(t *testing.T, path string) *websocket.Conn {
		t.Helper()
		cfg, err := websocket.NewConfig(wsURL+path, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Protocol = []string{"v4.channel.k8s.io"}
		ws, err := websocket.DialConfig(cfg)
		if err != nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		t.Cleanup(func() { ws.Close() })
		_ = ws.SetDeadline(time.Now().Add(20 * time.Second))
		return ws
	}
	// channels reads channel-prefixed messages until the server closes, and returns each
	// channel's bytes.
	channels := func(t *testing.T, ws *websocket.Conn) map[byte]string {
		t.Helper()
		got := map[byte]string{}
		for {
			var msg []byte
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("read: %v", err)
				}
				return got
			}
			if len(msg) > 0 {
				got[msg[0]] += string(msg[1:])
			}
		}
	}
	t.Run("exec over WebSocket v4", func(t *testing.T) {
		ws := dial(t, "shell/exec?command=sh&command=-c&command=hostname%3B+exit+2&stdout=true&stderr=true")
		got := channels(t, ws)
		if got[1] != "shell\n" {
			t.Errorf("stdout %q, want shell", got[1])
		}
		var st metav1.Status
		if err := json.Unmarshal([]byte(got[3]), &st); err != nil || st.Reason != "NonZeroExitCode" || st.Details == nil ||
			len(st.Details.Causes) != 1 || st.Details.Causes[0].Message != "2" {
			t.Errorf("error channel %q, want exit code 2", got[3])
		}
	})
	t.Run("port-forward over WebSocket v4", func(t *testing.T) {
		ws := dial(t, "kubia/portforward?ports=8080")
		if err := websocket.Message.Send(ws, append([]byte{0}, "GET / HTTP/1.0\r\n\r\n"...)); err != nil {
			t.Fatal(err)
		}
		// Each channel starts with the port, little-endian; then comes kubia's answer, and the
		// connection ends when kubia closes its side.
		got := channels(t, ws)
		port := "\x90\x1f"
		if !strings.HasPrefix(got[0], port) || !strings.HasSuffix(got[0], "You've hit kubia\n") || got[1] != port {
			t.Errorf("data channel %q, error channel %q; want port 8080, then kubia's answer", got[0], got[1])
		}
	})
}
