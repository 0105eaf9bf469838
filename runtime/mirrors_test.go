package runtime

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
)

func TestParseRegistryMirror(t *testing.T) {
	tests := []struct {
		in           string
		wantHost     string
		wantEndpoint string
		wantErr      string // substring; "" means success
	}{
		{in: "docker.io=http://127.0.0.1:5000", wantHost: "docker.io", wantEndpoint: "http://127.0.0.1:5000"},
		{in: "registry.example.com:5000=https://mirror.example.com/", wantHost: "registry.example.com:5000", wantEndpoint: "https://mirror.example.com"},
		{in: "localhost=https://mirror.example.com/prefix/v2", wantHost: "localhost", wantEndpoint: "https://mirror.example.com/prefix/v2"},
		{in: "quay.io=http://[::1]:5000", wantHost: "quay.io", wantEndpoint: "http://[::1]:5000"},
		{in: "docker.io", wantErr: "want HOST=URL"},
		{in: "=http://127.0.0.1:5000", wantErr: "empty registry host"},
		{in: "https://docker.io=http://127.0.0.1:5000", wantErr: "without scheme or path"},
		{in: "docker.io/library=http://127.0.0.1:5000", wantErr: "without scheme or path"},
		{in: "myregistry=http://127.0.0.1:5000", wantErr: `they would say "docker.io"`},
		{in: "index.docker.io=http://127.0.0.1:5000", wantErr: `they would say "docker.io"`},
		{in: "docker.io=127.0.0.1:5000", wantErr: "must start with http:// or https://"},
		{in: "docker.io=ftp://127.0.0.1", wantErr: "must start with http:// or https://"},
		{in: "docker.io=http://", wantErr: "has no host"},
		{in: "docker.io=http://user:pw@127.0.0.1:5000", wantErr: "must not carry credentials"},
		{in: "docker.io=http://127.0.0.1:5000?x=1", wantErr: "must not carry credentials"},
		{in: "docker.io=", wantErr: "must start with http"},
		{in: "docker.io=http://%zz", wantErr: "invalid mirror URL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, endpoint, err := ParseRegistryMirror(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRegistryMirror(%q) = %q, %q, %v; want error containing %q", tt.in, host, endpoint, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRegistryMirror(%q): %v", tt.in, err)
			}
			if host != tt.wantHost || endpoint != tt.wantEndpoint {
				t.Errorf("ParseRegistryMirror(%q) = %q, %q; want %q, %q", tt.in, host, endpoint, tt.wantHost, tt.wantEndpoint)
			}
		})
	}
}

// hostEntry is a docker.RegistryHost reduced to what decides where a request goes.
type hostEntry struct {
	Scheme string
	Host   string
	Path   string
	Caps   docker.HostCapabilities
}

func TestRegistryHostsMirrors(t *testing.T) {
	const all = docker.HostCapabilityPull | docker.HostCapabilityResolve | docker.HostCapabilityPush | docker.HostCapabilityReferrers
	mirrors := map[string][]string{
		"docker.io":                 {"http://127.0.0.1:5000", "https://mirror.example.com/"},
		"registry.example.com:5000": {"https://mirror.example.com/prefix"},
		"quay.io":                   {"https://mirror.example.com/prefix/v2/"},
	}
	tests := []struct {
		host string
		want []hostEntry
	}{
		{
			host: "docker.io",
			want: []hostEntry{
				{"http", "127.0.0.1:5000", "/v2", mirrorCapabilities},
				{"https", "mirror.example.com", "/v2", mirrorCapabilities},
				{"https", "registry-1.docker.io", "/v2", all},
			},
		},
		{
			host: "registry.example.com:5000",
			want: []hostEntry{
				{"https", "mirror.example.com", "/prefix/v2", mirrorCapabilities},
				{"https", "registry.example.com:5000", "/v2", all},
			},
		},
		{
			host: "quay.io",
			want: []hostEntry{
				{"https", "mirror.example.com", "/prefix/v2", mirrorCapabilities},
				{"https", "quay.io", "/v2", all},
			},
		},
		{
			// No mirrors: the registry alone, as containerd would without hosts.toml.
			host: "ghcr.io",
			want: []hostEntry{{"https", "ghcr.io", "/v2", all}},
		},
	}
	hosts := registryHosts(context.Background(), mirrors)
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			rhs, err := hosts(tt.host)
			if err != nil {
				t.Fatal(err)
			}
			var got []hostEntry
			for _, rh := range rhs {
				if rh.Client == nil || rh.Authorizer == nil {
					t.Errorf("host %s has no client or authorizer", rh.Host)
				}
				got = append(got, hostEntry{rh.Scheme, rh.Host, rh.Path, rh.Capabilities})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("hosts for %s:\n got %+v\nwant %+v", tt.host, got, tt.want)
			}
		})
	}
}

func TestRegistryHostsBadMirror(t *testing.T) {
	hosts := registryHosts(context.Background(), map[string][]string{"docker.io": {"127.0.0.1:5000"}})
	if _, err := hosts("docker.io"); err == nil || !strings.Contains(err.Error(), "mirrors of registry docker.io") {
		t.Fatalf("hosts(docker.io) error = %v, want one naming the registry's mirrors", err)
	}
}
