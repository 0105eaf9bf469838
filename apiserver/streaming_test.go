package apiserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

func TestParseExecOptions(t *testing.T) {
	tests := []struct {
		query   string
		want    execOptions
		wantErr string
	}{
		{query: "command=hostname&container=c&stdout=true&stderr=true",
			want: execOptions{command: []string{"hostname"}, container: "c", streams: remotecommand.Options{Stdout: true, Stderr: true}}},
		{query: "command=sh&command=-c&command=exit+3&stdin=1&stdout=1",
			want: execOptions{command: []string{"sh", "-c", "exit 3"}, streams: remotecommand.Options{Stdin: true, Stdout: true}}},
		// A terminal has no separate stderr, as with the kubelet.
		{query: "command=sh&stdin=true&stdout=true&stderr=true&tty=true",
			want: execOptions{command: []string{"sh"}, streams: remotecommand.Options{Stdin: true, Stdout: true, TTY: true}}},
		{query: "stdout=true", wantErr: "at least one command"},
		{query: "command=ls", wantErr: "at least one of stdin, stdout, stderr"},
		{query: "command=ls&stdout=yes", wantErr: `stdout: "yes" is not a boolean`},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		got, err := parseExecOptions(q)
		if tt.wantErr != "" {
			if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want BadRequest containing %q", tt.query, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, %v, want %+v", tt.query, got, err, tt.want)
		}
	}
}

func TestParsePortForwardPorts(t *testing.T) {
	tests := []struct {
		query   string
		want    []int32
		wantErr bool
	}{
		{query: "", want: nil},
		{query: "ports=8080", want: []int32{8080}},
		{query: "ports=80,443&ports=8080", want: []int32{80, 443, 8080}},
		{query: "ports=0", wantErr: true},
		{query: "ports=65536", wantErr: true},
		{query: "ports=http", wantErr: true},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		got, err := parsePorts(q)
		if (err != nil) != tt.wantErr || (err != nil && !apierrors.IsBadRequest(err)) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %v, %v, want %v (error %v)", tt.query, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestStreamCheckUpgrade(t *testing.T) {
	spdy := func(protocols ...string) http.Header {
		h := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}}
		for _, p := range protocols {
			h.Add("X-Stream-Protocol-Version", p)
		}
		return h
	}
	ws := func(protocols string) http.Header {
		h := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}
		if protocols != "" {
			h.Set("Sec-WebSocket-Protocol", protocols)
		}
		return h
	}
	tests := []struct {
		name       string
		header     http.Header
		spdy, ws   []string
		wantStatus int32 // 0: accepted
	}{
		{"kubectl exec over SPDY", spdy("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"),
			remotecommand.SupportedStreamingProtocols, execWebSocketProtocols, 0},
		{"comma-separated protocols", spdy("v5.channel.k8s.io, v4.channel.k8s.io"),
			remotecommand.SupportedStreamingProtocols, execWebSocketProtocols, 0},
		{"kubectl port-forward over SPDY", spdy("portforward.k8s.io"), portforward.SupportedProtocols, portForwardWebSocketProtocols, 0},
		{"no common SPDY protocol", spdy("v9.channel.k8s.io"), remotecommand.SupportedStreamingProtocols, execWebSocketProtocols, 403},
		{"no SPDY protocol", spdy(), remotecommand.SupportedStreamingProtocols, execWebSocketProtocols, 403},
		{"not an upgrade", http.Header{}, remotecommand.SupportedStreamingProtocols, execWebSocketProtocols, 400},
		{"upgrade to something else", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"h2c"}},
			remotecommand.SupportedStreamingProtocols, execWebSocketProtocols, 400},
		// kubectl 1.30+ exec and 1.31+ port-forward: served over WebSockets, by the kubelet API.
		{"kubectl 1.30+ exec WebSocket", ws("v5.channel.k8s.io"), remotecommand.SupportedStreamingProtocols, execWebSocketProtocols, 0},
		{"kubectl 1.31+ tunnelled port-forward", ws("SPDY/3.1+portforward.k8s.io"),
			portforward.SupportedProtocols, portForwardWebSocketProtocols, 0},
		{"legacy exec WebSocket", ws("v5.channel.k8s.io, v4.channel.k8s.io"),
			remotecommand.SupportedStreamingProtocols, execWebSocketProtocols, 0},
		{"legacy base64 exec WebSocket", ws("base64.channel.k8s.io"), remotecommand.SupportedStreamingProtocols, execWebSocketProtocols, 0},
		{"WebSocket without subprotocol", ws(""), portforward.SupportedProtocols, portForwardWebSocketProtocols, 0},
		{"legacy port-forward WebSocket", ws("v4.channel.k8s.io"), portforward.SupportedProtocols, portForwardWebSocketProtocols, 0},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/namespaces/default/pods/p/exec", nil)
		r.Header = tt.header
		err := checkUpgrade(r, tt.spdy, tt.ws)
		var code int32
		if st, ok := err.(apierrors.APIStatus); ok {
			code = st.Status().Code
		} else if err != nil {
			t.Errorf("%s: %v is not a Status error", tt.name, err)
			continue
		}
		if code != tt.wantStatus {
			t.Errorf("%s: status %d (%v), want %d", tt.name, code, err, tt.wantStatus)
		}
	}
}
