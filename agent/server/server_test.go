package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

const testNode = "node-a"

// fakeHost is a Host without containerd: pods in memory, logs as strings, exec by a function,
// port-forward dialing 127.0.0.1.
type fakeHost struct {
	mu       sync.Mutex
	pods     []*corev1.Pod
	running  map[string]string // ns/pod/container -> container ID
	logs     map[string]string // ns/pod/container -> log text
	logOpts  *corev1.PodLogOptions
	exec     func(ctx context.Context, id string, o ExecOptions) (int, error)
	stats    *statsapi.Summary
	statsErr error
	syncErr  error
	netnsErr error
}

func newFakeHost() *fakeHost {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "uid-1"},
		Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "app"}, {Name: "idle"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	return &fakeHost{
		pods:    []*corev1.Pod{pod},
		running: map[string]string{"ns/web/app": "ctr-app"},
		logs:    map[string]string{"ns/web/app": "line 1\nline 2\n"},
		exec:    fakeExec,
	}
}

func (h *fakeHost) Pods(context.Context) ([]*corev1.Pod, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*corev1.Pod(nil), h.pods...), nil
}

func (h *fakeHost) ContainerID(_ context.Context, ns, name, container string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.running[ns+"/"+name+"/"+container], nil
}

func (h *fakeHost) PodNetNS(_ context.Context, ns, name string) (string, error) {
	if h.netnsErr != nil {
		return "", h.netnsErr
	}
	return "/run/netns/" + ns + "-" + name, nil
}

func (h *fakeHost) ContainerLog(_ context.Context, ns, name, container string, opts *corev1.PodLogOptions) (func(io.Writer) error, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logOpts = opts
	text, ok := h.logs[ns+"/"+name+"/"+container]
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", container, name))
	}
	return func(out io.Writer) error {
		_, err := io.WriteString(out, text)
		return err
	}, nil
}

func (h *fakeHost) Exec(ctx context.Context, id string, o ExecOptions) (int, error) {
	return h.exec(ctx, id, o)
}

// PortForward dials the port on 127.0.0.1 (the fake pod's "netns") and copies both ways, with
// the client's half-close passed on as runtime.PortForward does.
func (h *fakeHost) PortForward(ctx context.Context, _ string, port int32, stream io.ReadWriteCloser) error {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer conn.Close()
	defer stream.Close()
	go func() {
		_, _ = io.Copy(conn, stream)
		_ = conn.(*net.TCPConn).CloseWrite()
	}()
	_, err = io.Copy(stream, conn)
	return err
}

func (h *fakeHost) Stats(context.Context) (*statsapi.Summary, error) {
	if h.statsErr != nil {
		return nil, h.statsErr
	}
	if h.stats == nil {
		return &statsapi.Summary{}, nil
	}
	cp := *h.stats
	return &cp, nil
}

func (h *fakeHost) SyncLoopHealthy() error { return h.syncErr }

// fakeExec runs the commands the tests use: echo ARGS, cat (stdin to stdout), err ARGS (to
// stderr), exit N, size (prints the first terminal size).
func fakeExec(ctx context.Context, _ string, o ExecOptions) (int, error) {
	switch o.Cmd[0] {
	case "echo":
		fmt.Fprintln(o.Stdout, strings.Join(o.Cmd[1:], " "))
	case "err":
		fmt.Fprintln(o.Stderr, strings.Join(o.Cmd[1:], " "))
	case "cat":
		if _, err := io.Copy(o.Stdout, o.Stdin); err != nil {
			return 0, err
		}
	case "exit":
		var code int
		fmt.Sscan(o.Cmd[1], &code)
		return code, nil
	case "size":
		select {
		case s := <-o.Resize:
			fmt.Fprintf(o.Stdout, "%dx%d\n", s.Width, s.Height)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	default:
		return 0, errors.New("no such command")
	}
	return 0, nil
}

// fakeTokens knows two tokens: "admin-token" (user admin) and "viewer-token" (user viewer).
type fakeTokens struct{}

func (fakeTokens) AuthenticateToken(_ context.Context, token string) (*UserInfo, bool, error) {
	switch token {
	case "admin-token":
		return &UserInfo{Name: "admin", Groups: []string{"system:masters"}}, true, nil
	case "viewer-token":
		return &UserInfo{Name: "viewer"}, true, nil
	case "broken-token":
		return nil, false, errors.New("TokenReview failed")
	}
	return nil, false, nil
}

// fakeAuthorizer allows admin everything, and the users in allow the subresources listed;
// it records every question.
type fakeAuthorizer struct {
	mu    sync.Mutex
	allow map[string][]string
	asked []Attributes
	err   error
}

func (a *fakeAuthorizer) Authorize(_ context.Context, attrs Attributes) (bool, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, attrs)
	if a.err != nil {
		return false, "", a.err
	}
	if attrs.User.Name == "admin" {
		return true, "", nil
	}
	for _, s := range a.allow[attrs.User.Name] {
		if s == attrs.Subresource {
			return true, "", nil
		}
	}
	return false, "no", nil
}

type testEnv struct {
	host  *fakeHost
	authz *fakeAuthorizer
	srv   *httptest.Server
	reg   *prometheus.Registry
}

// newTestEnv serves a Server for the fake host over TLS on 127.0.0.1, asking for client
// certificates as Listen does.
func newTestEnv(t *testing.T, mutate func(*Options)) *testEnv {
	t.Helper()
	e := &testEnv{host: newFakeHost(), authz: &fakeAuthorizer{allow: map[string][]string{}}, reg: prometheus.NewRegistry()}
	opts := Options{Host: e.host, NodeName: testNode, Authenticator: BearerToken{Tokens: fakeTokens{}}, Authorizer: e.authz, Metrics: e.reg}
	if mutate != nil {
		mutate(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(s)
	e.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, NextProtos: []string{"http/1.1"}}
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	return e
}

// restConfig is a client-go config for the test server with a bearer token.
func (e *testEnv) restConfig(token string) *rest.Config {
	return &rest.Config{Host: e.srv.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
}

// do sends a request with a bearer token and returns the status and body.
func (e *testEnv) do(t *testing.T, method, path, token string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func TestEndpoints(t *testing.T) {
	e := newTestEnv(t, nil)
	tests := []struct {
		name, method, path string
		code               int
		body               string // a substring of the answer
	}{
		{"healthz", "GET", "/healthz", 200, "ok"},
		{"healthz verbose", "GET", "/healthz?verbose", 200, "[+]syncloop ok\nhealthz check passed\n"},
		{"healthz one check", "GET", "/healthz/ping", 200, "ok"},
		{"pods", "GET", "/pods", 200, `"kind":"PodList","apiVersion":"v1"`},
		{"pods POST", "POST", "/pods", 405, "Method Not Allowed"},
		{"logs", "GET", "/containerLogs/ns/web/app", 200, "line 1\nline 2\n"},
		{"logs of a missing pod", "GET", "/containerLogs/ns/nope/app", 404, `pod "nope" does not exist`},
		{"logs of a missing container", "GET", "/containerLogs/ns/web/nope", 404, `container "nope" not found in pod "web"`},
		{"logs of a waiting container", "GET", "/containerLogs/ns/web/idle", 400, `container "idle" in pod "web" is waiting to start`},
		{"run", "POST", "/run/ns/web/app?cmd=echo+hello+world", 200, "hello world\n"},
		{"run with uid", "POST", "/run/ns/web/uid-1/app?cmd=echo+hi", 200, "hi\n"},
		{"run failing", "POST", "/run/ns/web/app?cmd=exit+3", 500, "command 'exit 3' exited with 3: "},
		{"run on another uid", "POST", "/run/ns/web/uid-2/app?cmd=echo", 500, `container not found ("app")`},
		{"run on a stopped container", "POST", "/run/ns/web/idle?cmd=echo", 500, `container not found ("idle")`},
		{"run GET", "GET", "/run/ns/web/app?cmd=echo", 405, ""},
		{"exec of a missing pod", "POST", "/exec/ns/nope/app?command=echo&output=1", 404, "pod does not exist"},
		{"exec without streams", "POST", "/exec/ns/web/app?command=echo", 400, "you must specify at least 1 of stdin, stdout, stderr"},
		{"exec without upgrade", "POST", "/exec/ns/web/app?command=echo&output=1", 400, "unable to upgrade"},
		{"attach", "POST", "/attach/ns/web/app?output=1", 400, `"kind":"Status"`},
		{"attach of a missing pod", "POST", "/attach/ns/nope/app?output=1", 404, "pod does not exist"},
		{"port-forward of a missing pod", "POST", "/portForward/ns/nope", 404, "pod does not exist"},
		{"port-forward to another uid", "POST", "/portForward/ns/web/uid-2", 404, "pod not found"},
		{"stats", "GET", "/stats/summary", 200, `"nodeName":"node-a"`},
		{"metrics", "GET", "/metrics", 200, ""},
		{"resource metrics", "GET", "/metrics/resource", 200, "resource_scrape_error 0"},
		{"unknown", "GET", "/spec/", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := e.do(t, tt.method, tt.path, "admin-token")
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.body)
			}
		})
	}
}

func TestPodsList(t *testing.T) {
	e := newTestEnv(t, nil)
	_, body, hdr := e.do(t, "GET", "/pods", "admin-token")
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var list corev1.PodList
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "web" || list.Items[0].Spec.NodeName != testNode {
		t.Errorf("pods = %+v", list.Items)
	}
}

func TestHealthzFailing(t *testing.T) {
	e := newTestEnv(t, nil)
	e.host.syncErr = errors.New("sync loop stalled for 3m")
	code, body, _ := e.do(t, "GET", "/healthz", "admin-token")
	want := "[+]ping ok\n[+]log ok\n[-]syncloop failed: reason withheld\nhealthz check failed\n"
	if code != 500 || body != want {
		t.Errorf("healthz = %d %q, want 500 %q", code, body, want)
	}
	if code, _, _ := e.do(t, "GET", "/healthz?exclude=syncloop", "admin-token"); code != 200 {
		t.Errorf("healthz excluding syncloop = %d", code)
	}
	if code, body, _ := e.do(t, "GET", "/healthz/syncloop", "admin-token"); code != 500 || !strings.Contains(body, "sync loop stalled") {
		t.Errorf("healthz/syncloop = %d %q", code, body)
	}
}

func TestPortForwardRefusedWithoutSandbox(t *testing.T) {
	e := newTestEnv(t, nil)
	e.host.netnsErr = apierrors.NewBadRequest("pod web does not have a running sandbox")
	code, body, _ := e.do(t, "POST", "/portForward/ns/web", "admin-token")
	if code != 400 || !strings.Contains(body, "does not have a running sandbox") {
		t.Errorf("port-forward = %d %q", code, body)
	}
}

func TestServerOptionsRequired(t *testing.T) {
	for _, opts := range []Options{
		{NodeName: testNode, Authorizer: &fakeAuthorizer{}},
		{Host: newFakeHost(), Authorizer: &fakeAuthorizer{}},
		{Host: newFakeHost(), NodeName: testNode},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("New(%+v) succeeded", opts)
		}
	}
}

// TestListen serves on 127.0.0.1 with a self-signed certificate made in the state directory,
// as the kubelet does without one, and stops when the context ends.
func TestListen(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Listen(ctx, Options{Addr: addr, CertDir: dir, Host: newFakeHost(), NodeName: testNode,
			Authenticator: BearerToken{Tokens: fakeTokens{}}, Authorizer: &fakeAuthorizer{}})
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(10 * time.Second)
	var resp *http.Response
	for {
		req, _ := http.NewRequest("GET", "https://"+addr+"/healthz", nil)
		req.Header.Set("Authorization", "Bearer admin-token")
		resp, err = client.Do(req)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz = %d", resp.StatusCode)
	}
	if cn := resp.TLS.PeerCertificates[0].DNSNames; len(cn) != 1 || cn[0] != testNode {
		t.Errorf("serving certificate names %v, want [%s]", cn, testNode)
	}
	for _, f := range []string{"pki/kubelet.crt", "pki/kubelet.key"} {
		if !fileExists(dir + "/" + f) {
			t.Errorf("%s was not written", f)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Listen = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after its context ended")
	}
}
