package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Listener is the API served over HTTPS, with the kubeconfig that reaches it.
type Listener struct {
	// Addr is where it listens; Kubeconfig is the admin kubeconfig's path; Server its URL.
	Addr, Kubeconfig, Server string
	// PKI holds the CA that signs the API's clients.
	PKI  *PKI
	srv  *http.Server
	done chan error
}

// Options say where the API listens and where its credentials live.
type Options struct {
	// Listen is host:port; a port of 0 picks one.
	Listen string
	// PKIDir holds the CA and certificates (made at first start); Kubeconfig is written on each start.
	PKIDir, Kubeconfig string
	// Hosts are extra names and addresses the serving certificate is valid for (the node's).
	Hosts []string
}

// Listen serves s over HTTPS with client-certificate authentication and writes the admin
// kubeconfig (0600). Nothing is served over plain HTTP.
func Listen(s *Server, o Options) (*Listener, error) {
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen for the API on %s: %w", o.Listen, err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	serverHost := host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		serverHost = "127.0.0.1" // listening everywhere: the local kubeconfig uses loopback
	}
	hosts := append([]string{"127.0.0.1", "::1", "localhost", serverHost}, o.Hosts...)
	if hn, err := os.Hostname(); err == nil {
		hosts = append(hosts, strings.ToLower(hn))
	}
	pki, err := LoadOrCreatePKI(o.PKIDir, dedupe(hosts), time.Now())
	if err != nil {
		ln.Close()
		return nil, err
	}
	server := "https://" + net.JoinHostPort(serverHost, port)
	if err := WriteKubeconfig(o.Kubeconfig, server, pki, "podagent"); err != nil {
		ln.Close()
		return nil, err
	}
	l := &Listener{Addr: ln.Addr().String(), Kubeconfig: o.Kubeconfig, Server: server, PKI: pki, done: make(chan error, 1)}
	l.srv = &http.Server{
		Handler:           RequireClientCert(s),
		TLSConfig:         pki.TLSConfig(),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug),
	}
	go func() { l.done <- l.srv.ServeTLS(ln, "", "") }()
	slog.Info("serving the Kubernetes API", "addr", l.Addr, "kubeconfig", o.Kubeconfig)
	return l, nil
}

// Close stops serving; streams in progress (watches, log follows) are cut.
func (l *Listener) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := l.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = l.srv.Close()
	}
	if serr := <-l.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// KubeconfigPath is where the admin kubeconfig of an agent with root dir is written.
func KubeconfigPath(rootDir string) string { return filepath.Join(rootDir, "kubeconfig") }

// PKIDir is where an agent with root dir keeps its CA and certificates.
func PKIDir(rootDir string) string { return filepath.Join(rootDir, "pki") }
