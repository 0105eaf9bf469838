package runtime

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/distribution/reference"
)

// ParseRegistryMirror parses the value of a --registry-mirror flag, "HOST=ENDPOINT", e.g.
// "docker.io=http://127.0.0.1:5000". HOST is a registry host as it appears in image references
// (docker.io, registry.example.com:5000); ENDPOINT is an http or https URL, optionally with a path
// under which the registry API lives. The flag is repeatable: mirrors of one host are tried in the
// order given, then the host itself.
func ParseRegistryMirror(s string) (host, endpoint string, err error) {
	host, endpoint, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("registry mirror %q: want HOST=URL, e.g. docker.io=http://127.0.0.1:5000", s)
	}
	if err := checkRegistryHost(host); err != nil {
		return "", "", fmt.Errorf("registry mirror %q: %w", s, err)
	}
	if err := checkMirrorURL(endpoint); err != nil {
		return "", "", fmt.Errorf("registry mirror %q: %w", s, err)
	}
	return host, strings.TrimSuffix(endpoint, "/"), nil
}

// checkRegistryHost accepts host only if an image reference naming it keeps it as its registry:
// "myregistry" or "index.docker.io" would be rewritten by normalization (into docker.io/myregistry/...
// and docker.io), so a mirror configured for them would never be used.
func checkRegistryHost(host string) error {
	if host == "" {
		return fmt.Errorf("empty registry host")
	}
	if strings.Contains(host, "://") || strings.Contains(host, "/") {
		return fmt.Errorf("registry host %q must be a bare host[:port], without scheme or path", host)
	}
	named, err := reference.ParseNormalizedNamed(host + "/image")
	if err != nil {
		return fmt.Errorf("invalid registry host %q: %w", host, err)
	}
	if got := reference.Domain(named); got != host {
		return fmt.Errorf("registry host %q is not how image references name a registry (they would say %q); "+
			"a host needs a dot or a port, or must be localhost", host, got)
	}
	return nil
}

// checkMirrorURL accepts an absolute http or https URL with a host and nothing a registry client
// could not use (query, fragment, credentials).
func checkMirrorURL(endpoint string) error {
	// Checked before parsing: a bare host:port is the likely mistake, and url.Parse's complaint
	// about it ("first path segment in URL cannot contain colon") would not say what to do.
	if !strings.HasPrefix(endpoint, "http://") && !strings.HasPrefix(endpoint, "https://") {
		return fmt.Errorf("mirror URL %q must start with http:// or https://", endpoint)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("invalid mirror URL %q: %w", endpoint, err)
	}
	if u.Host == "" {
		return fmt.Errorf("mirror URL %q has no host", endpoint)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("mirror URL %q must not carry credentials, a query or a fragment", endpoint)
	}
	return nil
}

// mirrorEndpoint is one mirror of a registry host, reduced to what a docker.RegistryHost needs.
type mirrorEndpoint struct {
	Scheme string
	Host   string
	Path   string
}

// mirrorEndpoints parses the mirror URLs of one registry host, in order. The API root is the URL's
// path with /v2 appended unless it already ends in /v2, as containerd does for a hosts.toml
// [host."..."] entry.
func mirrorEndpoints(urls []string) ([]mirrorEndpoint, error) {
	eps := make([]mirrorEndpoint, 0, len(urls))
	for _, raw := range urls {
		if err := checkMirrorURL(raw); err != nil {
			return nil, err
		}
		u, _ := url.Parse(raw) // checked above
		p := "/v2"
		if u.Path != "" && u.Path != "/" {
			p = path.Clean(u.Path)
			if !strings.HasSuffix(p, "/v2") {
				p += "/v2"
			}
		}
		eps = append(eps, mirrorEndpoint{Scheme: u.Scheme, Host: u.Host, Path: p})
	}
	return eps, nil
}

// mirrorCapabilities are what a mirror is trusted with: fetching content and resolving tags, as
// containerd's CRI does for configured mirrors; never pushing. Resolve must be allowed or every tag
// would still be resolved upstream, which defeats a mirror on a node without access to upstream.
const mirrorCapabilities = docker.HostCapabilityPull | docker.HostCapabilityResolve

// registryHosts returns the hosts to try for a registry: its mirrors in the configured order, then
// the registry itself as containerd configures it without a hosts.toml (docker.io goes to
// registry-1.docker.io over https; localhost with a port other than 443 uses plain http). This is
// the list a hosts.toml with one [host."mirror"] entry per mirror and no server line produces.
func registryHosts(ctx context.Context, mirrors map[string][]string) docker.RegistryHosts {
	upstream := config.ConfigureHosts(ctx, config.HostOptions{})
	// One client for all mirrors keeps connections to them alive across the resolve and the fetches
	// of one pull. Its TLS config verifies certificates; http:// mirrors never use it.
	client := &http.Client{Transport: docker.DefaultHTTPTransport(&tls.Config{})}
	authorizer := docker.NewDockerAuthorizer(docker.WithAuthClient(client))
	return func(host string) ([]docker.RegistryHost, error) {
		eps, err := mirrorEndpoints(mirrors[host])
		if err != nil {
			return nil, fmt.Errorf("mirrors of registry %s: %w", host, err)
		}
		up, err := upstream(host)
		if err != nil {
			return nil, fmt.Errorf("configure registry %s: %w", host, err)
		}
		hosts := make([]docker.RegistryHost, 0, len(eps)+len(up))
		for _, ep := range eps {
			hosts = append(hosts, docker.RegistryHost{
				Client:       client,
				Authorizer:   authorizer,
				Host:         ep.Host,
				Scheme:       ep.Scheme,
				Path:         ep.Path,
				Capabilities: mirrorCapabilities,
			})
		}
		return append(hosts, up...), nil
	}
}

// newResolver returns a resolver that pulls through the configured mirrors.
func newResolver(ctx context.Context, mirrors map[string][]string) remotes.Resolver {
	return docker.NewResolver(docker.ResolverOptions{Hosts: registryHosts(ctx, mirrors)})
}
