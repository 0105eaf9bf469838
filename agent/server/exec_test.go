package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// execURL is the kubelet exec URL for the fake pod's app container.
func (e *testEnv) execURL(t *testing.T, q string) *url.URL {
	t.Helper()
	u, err := url.Parse(e.srv.URL + "/exec/ns/web/uid-1/app?" + q)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// executors are client-go's executors for each protocol the kubelet serves for exec.
func executors(t *testing.T, e *testEnv, q string) map[string]remotecommand.Executor {
	t.Helper()
	u := e.execURL(t, q)
	cfg := e.restConfig("admin-token")
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	v5, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
	if err != nil {
		t.Fatal(err)
	}
	v4, err := remotecommand.NewWebSocketExecutorForProtocols(cfg, "GET", u.String(), "v4.channel.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]remotecommand.Executor{"spdy": spdy, "websocket v5": v5, "websocket v4": v4}
}

func TestExecStreams(t *testing.T) {
	e := newTestEnv(t, nil)
	tests := []struct {
		name      string
		query     string
		stdin     string
		stdout    string
		stderr    string
		exitCode  int
		protocols []string // default: all
	}{
		{name: "stdout", query: "command=echo&command=hello&output=1", stdout: "hello\n"},
		{name: "stderr", query: "command=err&command=oops&output=1&error=1", stderr: "oops\n"},
		{name: "exit code", query: "command=exit&command=3&output=1&error=1", exitCode: 3},
		// Closing stdin needs SPDY's half-close or v5's CLOSE signal; v4 has neither.
		{name: "stdin to EOF", query: "command=cat&input=1&output=1", stdin: "typed\ninput\n", stdout: "typed\ninput\n",
			protocols: []string{"spdy", "websocket v5"}},
	}
	for _, tt := range tests {
		for proto, ex := range executors(t, e, tt.query) {
			if tt.protocols != nil && !contains(tt.protocols, proto) {
				continue
			}
			t.Run(tt.name+" over "+proto, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				var stdout, stderr bytes.Buffer
				opts := remotecommand.StreamOptions{Stdout: &stdout}
				if strings.Contains(tt.query, "error=1") {
					opts.Stderr = &stderr
				}
				if strings.Contains(tt.query, "input=1") {
					opts.Stdin = strings.NewReader(tt.stdin)
				}
				err := ex.StreamWithContext(ctx, opts)
				code := 0
				var exitErr utilexec.ExitError
				if errors.As(err, &exitErr) {
					code = exitErr.ExitStatus()
				} else if err != nil {
					t.Fatalf("exec: %v", err)
				}
				if code != tt.exitCode || stdout.String() != tt.stdout || stderr.String() != tt.stderr {
					t.Errorf("exit %d stdout %q stderr %q, want %d %q %q", code, stdout.String(), stderr.String(),
						tt.exitCode, tt.stdout, tt.stderr)
				}
			})
		}
	}
}

// sizeQueue hands out one terminal size.
type sizeQueue struct{ sent bool }

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	if q.sent {
		select {} // no more sizes: the stream ends first
	}
	q.sent = true
	return &remotecommand.TerminalSize{Width: 120, Height: 40}
}

func TestExecTTYResize(t *testing.T) {
	e := newTestEnv(t, nil)
	for proto, ex := range executors(t, e, "command=size&output=1&tty=1&input=1") {
		if proto == "websocket v4" {
			continue // the kubelet's v4 WebSocket resize works the same; covered by v5
		}
		t.Run(proto, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stdout bytes.Buffer
			pr, pw := io.Pipe()
			defer pw.Close()
			err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: pr, Stdout: &stdout, Tty: true, TerminalSizeQueue: &sizeQueue{}})
			if err != nil || stdout.String() != "120x40\n" {
				t.Errorf("exec = %v, stdout %q", err, stdout.String())
			}
		})
	}
}

// TestExecKilledWhenClientGoes checks that the host's exec context ends when the client's
// connection does, so that a command is not left running with nobody attached.
func TestExecKilledWhenClientGoes(t *testing.T) {
	e := newTestEnv(t, nil)
	started, ended := make(chan struct{}), make(chan struct{})
	e.host.exec = func(ctx context.Context, _ string, o ExecOptions) (int, error) {
		close(started)
		<-ctx.Done()
		close(ended)
		return 0, ctx.Err()
	}
	for proto, ex := range executors(t, e, "command=sleep&output=1") {
		// client-go's WebSocket executor closes its connection when its context ends; its SPDY
		// one waits for the streams (kubectl exiting closes the socket instead).
		if proto != "websocket v5" {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _ = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &bytes.Buffer{}}) }()
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatal("exec did not start")
		}
		cancel()
		select {
		case <-ended:
		case <-time.After(20 * time.Second):
			t.Fatal("the exec's context did not end after the client went away")
		}
	}
}

func TestExecStatus(t *testing.T) {
	tests := []struct {
		err    error
		status string
		reason string
	}{
		{nil, "Success", ""},
		{utilexec.CodeExitError{Err: errors.New("x"), Code: 2}, "Failure", "NonZeroExitCode"},
		{errors.New("runtime broke"), "Failure", "InternalError"},
	}
	for _, tt := range tests {
		st := execStatus(tt.err)
		if st.Status != tt.status || string(st.Reason) != tt.reason {
			t.Errorf("execStatus(%v) = %+v", tt.err, st)
		}
	}
	if c := execStatus(utilexec.CodeExitError{Err: errors.New("x"), Code: 2}).Details.Causes[0]; c.Type != "ExitCode" || c.Message != "2" {
		t.Errorf("cause = %+v", c)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
