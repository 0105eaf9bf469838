package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// echoServer listens on 127.0.0.1 and answers each line with "echo: " and the line, until the
// client half-closes.
func echoServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "echo: %s\n", sc.Text())
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// forward runs client-go's port-forwarder with dialer to the pod's port and returns the local port.
func forward(t *testing.T, dialer httpstream.Dialer, port int) int {
	t.Helper()
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	t.Cleanup(func() { close(stop) })
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("port-forward: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("port-forward not ready")
	}
	ports, err := fw.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	return int(ports[0].Local)
}

// roundTrip sends two lines through the local port and reads the answers after a half-close.
func roundTrip(t *testing.T, local int) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", local), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprint(c, "one\ntwo\n")
	_ = c.(*net.TCPConn).CloseWrite()
	out, err := io.ReadAll(c)
	return string(out), err
}

func TestPortForward(t *testing.T) {
	e := newTestEnv(t, nil)
	port := echoServer(t)
	cfg := e.restConfig("admin-token")
	u, _ := url.Parse(e.srv.URL + "/portForward/ns/web/uid-1")

	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", u)
	tunnelDialer, err := portforward.NewSPDYOverWebsocketDialer(u, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]httpstream.Dialer{"spdy": spdyDialer, "spdy tunnelled in a websocket": tunnelDialer} {
		t.Run(name, func(t *testing.T) {
			local := forward(t, d, port)
			for i := 0; i < 2; i++ { // one request serves many connections
				if got, err := roundTrip(t, local); err != nil || got != "echo: one\necho: two\n" {
					t.Errorf("connection %d got %q, %v", i, got, err)
				}
			}
		})
	}
}

// TestPortForwardPodReplaced checks that a connection to a pod replaced since the request began is
// refused: the forwarder looks the pod up again for each connection.
func TestPortForwardPodReplaced(t *testing.T) {
	e := newTestEnv(t, nil)
	port := echoServer(t)
	cfg := e.restConfig("admin-token")
	u, _ := url.Parse(e.srv.URL + "/portForward/ns/web")
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	local := forward(t, spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", u), port)
	e.host.mu.Lock()
	replaced := *e.host.pods[0]
	replaced.UID = "uid-2"
	e.host.pods[0] = &replaced
	e.host.mu.Unlock()
	// The connection is closed or reset without an answer.
	if got, _ := roundTrip(t, local); strings.Contains(got, "echo") {
		t.Errorf("reached a replaced pod: %q", got)
	}
}

func TestPortForwardWebSocketNeedsPorts(t *testing.T) {
	e := newTestEnv(t, nil)
	req, _ := http.NewRequest("GET", e.srv.URL+"/portForward/ns/web", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || string(body) != `query parameter "port" is required` {
		t.Errorf("= %d %q", resp.StatusCode, body)
	}
}
