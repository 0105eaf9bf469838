package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/runtime"
)

// halfClosingStream is a client that sends req, then half-closes (its reads end), and collects
// what comes back.
// Its fields are named so that io.Copy sees only Read and Write, not bytes.Buffer's WriteTo.
type halfClosingStream struct {
	in     io.Reader
	out    bytes.Buffer
	closed bool
}

func (s *halfClosingStream) Write(p []byte) (int, error) { return s.out.Write(p) }
func (s *halfClosingStream) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *halfClosingStream) Close() error                { s.closed = true; return nil }

// Port-forward reaches the pod's loopback (IPv4 and IPv6), not the host's, and passes bytes both
// ways.
func TestPortForward(t *testing.T) {
	rt := testenv.NewRuntime(t)
	pod := newPod("port-forward",
		busybox("web4", "sh", "-c", "mkdir /www && echo hello-v4 > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"),
		busybox("web6", "sh", "-c", "mkdir /www && echo hello-v6 > /www/index.html && exec httpd -f -p [::1]:8081 -h /www"),
	)
	rp, err := rt.RunPod(rt.Ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	nsPath := rp.Sandbox.NetNSPath

	get := "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"
	t.Run("half-closed client gets the whole answer", func(t *testing.T) {
		for port, want := range map[int32]string{8080: "hello-v4", 8081: "hello-v6"} {
			testenv.Eventually(t, 10*time.Second, func() error {
				s := &halfClosingStream{in: strings.NewReader(get)}
				if err := runtime.PortForward(context.Background(), nsPath, port, s); err != nil {
					return err
				}
				if !s.closed {
					return fmt.Errorf("port %d: stream not closed", port)
				}
				if got := s.out.String(); !strings.HasPrefix(got, "HTTP/1.") || !strings.Contains(got, want) {
					return fmt.Errorf("port %d: answer %q, want %q", port, got, want)
				}
				return nil
			})
		}
	})

	t.Run("full-duplex stream", func(t *testing.T) {
		client, server := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- runtime.PortForward(context.Background(), nsPath, 8080, server) }()
		client.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(client, get); err != nil {
			t.Fatal(err)
		}
		// httpd answers an HTTP/1.0 request and closes: PortForward then ends and closes the stream.
		got, err := io.ReadAll(client)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(got), "hello-v4") {
			t.Errorf("answer %q lacks hello-v4", got)
		}
		if err := <-done; err != nil {
			t.Errorf("PortForward: %v", err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		client, server := net.Pipe()
		defer client.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runtime.PortForward(ctx, nsPath, 8080, server) }()
		// httpd waits for a request that never comes; the cancel ends the forward.
		cancel()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "context canceled") {
				t.Errorf("PortForward after cancel = %v, want context canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("PortForward did not return after cancel")
		}
	})

	t.Run("host loopback is not reached", func(t *testing.T) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := int32(ln.Addr().(*net.TCPAddr).Port)
		client, server := net.Pipe()
		defer client.Close()
		err = runtime.PortForward(context.Background(), nsPath, port, server)
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("PortForward to port %d, open only on the host = %v, want connection refused", port, err)
		}
	})

	t.Run("bad port or namespace", func(t *testing.T) {
		for _, c := range []struct {
			path string
			port int32
			want string
		}{
			{nsPath, 0, "invalid port 0"},
			{nsPath, 70000, "invalid port 70000"},
			{"/nonexistent/netns", 8080, "open network namespace /nonexistent/netns"},
		} {
			_, server := net.Pipe()
			if err := runtime.PortForward(context.Background(), c.path, c.port, server); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("PortForward(%s, %d) = %v, want error containing %q", c.path, c.port, err, c.want)
			}
		}
	})
}
