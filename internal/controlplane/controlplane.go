// Package controlplane runs a real Kubernetes control plane for podagent's end-to-end tests: etcd
// (Debian's etcd-server), kube-apiserver, kube-controller-manager and kube-scheduler, built from
// the Go module proxy by hack/controlplane/build.sh (`make controlplane`). Everything a cluster
// needs (PKI, data, logs) lives in the test's temporary directory, every port is a free one on
// 127.0.0.1, and the processes are gone when the test ends, so clusters never collide.
//
// Choices worth knowing:
//   - kube-apiserver runs without --kubelet-certificate-authority: it does not verify the serving
//     certificates of kubelet ports (the agent's may be self-signed), as kubeadm's default. It
//     authenticates itself to them with a client certificate in O=system:masters.
//   - kube-controller-manager signs CSRs with the cluster CA and allocates each node a /24 from
//     10.244.0.0/16 (spec.podCIDR); --service-cluster-ip-range 10.96.0.0/16 only lives in etcd.
//   - etcd speaks plain HTTP on loopback: nothing but the apiserver reaches it.
//   - services/default/kubernetes exists (the e2e framework needs it) but has no endpoints:
//     kube-apiserver refuses to publish its loopback address (--endpoint-reconciler-type=none).
//   - kube-apiserver reaches a node's kubelet port at its InternalIP, then Hostname. Pod logs,
//     exec, attach and port-forward accept a loopback address; nodes/proxy (stats, metrics
//     through the apiserver) answers "address not allowed" unless it is a global unicast one.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Version is the Kubernetes release that hack/controlplane builds, matching go.mod's k8s.io/api.
const Version = "v1.37.2"

// DefaultBinDir is where hack/controlplane/build.sh puts the binaries unless PODAGENT_K8S_BIN
// says otherwise.
const DefaultBinDir = "/var/cache/podagent/kubernetes-" + Version + "/bin"

// Binaries are the programs Start runs from Options.BinDir.
var Binaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// Options configures Start. The zero value is a working cluster.
type Options struct {
	// BinDir holds kube-apiserver, kube-controller-manager and kube-scheduler. Default:
	// $PODAGENT_K8S_BIN, else DefaultBinDir.
	BinDir string
	// Etcd is the etcd binary. Default: etcd in PATH (Debian's etcd-server: /usr/bin/etcd).
	Etcd string
	// Extra flags appended to each component's command line; a repeated scalar flag's last
	// value wins.
	APIServerArgs, ControllerManagerArgs, SchedulerArgs []string
	// Timeout bounds the wait for every component to be ready. Default: 2 minutes.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.BinDir == "" {
		o.BinDir = os.Getenv("PODAGENT_K8S_BIN")
	}
	if o.BinDir == "" {
		o.BinDir = DefaultBinDir
	}
	if o.Etcd == "" {
		o.Etcd = "etcd"
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	return o
}

// Check reports what Start would miss: a binary not built or etcd not installed, with the
// command that fixes it.
func Check(opts Options) error {
	opts = opts.withDefaults()
	var errs []error
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(opts.BinDir, b)); err != nil {
			errs = append(errs, fmt.Errorf("%s not built in %s: run `make controlplane` (hack/controlplane/build.sh)", b, opts.BinDir))
			break
		}
	}
	if _, err := exec.LookPath(opts.Etcd); err != nil {
		errs = append(errs, fmt.Errorf("etcd not found (%v): run `make controlplane` as root (hack/controlplane/deps.sh installs Debian's etcd-server)", err))
	}
	return errors.Join(errs...)
}

// Cluster is a running control plane. Its files live in Dir until the test ends.
type Cluster struct {
	// Dir holds the PKI, the kubeconfigs, etcd's data and every component's log (logs/NAME.log).
	Dir string
	// Server is kube-apiserver's URL, https://127.0.0.1:PORT.
	Server string
	// AdminKubeconfig is a kubeconfig for user kubernetes-admin in group system:masters.
	AdminKubeconfig string
	// CACert and CAKey are the cluster CA's PEM files: it signs the apiserver's serving cert,
	// every client cert, and the CSRs kube-controller-manager approves.
	CACert, CAKey string
	// KubeletClientCert and KubeletClientKey are what kube-apiserver presents to kubelet ports.
	KubeletClientCert, KubeletClientKey string

	pki   *pki
	admin *http.Client
	procs []*process // in start order

	stopOnce sync.Once
	stopErr  error
	rbacOnce sync.Once
	rbacErr  error
}

// Start runs a control plane for t and stops it when t ends, failing t if any process is left
// behind. It builds nothing: a missing binary fails t with the command that builds it. When t
// fails, the last lines of every component's log are printed.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	opts = opts.withDefaults()
	if err := Check(opts); err != nil {
		t.Fatalf("control plane: %v", err)
	}
	etcdBin, _ := exec.LookPath(opts.Etcd)
	began := time.Now()

	c := &Cluster{Dir: t.TempDir()}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("--- last lines of %s (%s):\n%s", p.name, p.logFile, tail(p.logFile, 30))
			}
		}
	})
	fatal := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("control plane in %s: %s", c.Dir, fmt.Sprintf(format, args...))
	}

	pkiDir, logDir := filepath.Join(c.Dir, "pki"), filepath.Join(c.Dir, "logs")
	for _, d := range []string{pkiDir, logDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			fatal("%v", err)
		}
	}
	p, err := generatePKI(pkiDir)
	if err != nil {
		fatal("generate PKI: %v", err)
	}
	c.pki = p
	c.CACert, c.CAKey = p.CA.CertFile, p.CA.KeyFile
	c.KubeletClientCert, c.KubeletClientKey = p.KubeletClient.CertFile, p.KubeletClient.KeyFile
	c.admin = httpClient(p.CA.Cert, p.Admin)

	ports, err := freePorts(5)
	if err != nil {
		fatal("pick free ports: %v", err)
	}
	etcdClient, etcdPeer, apiPort, cmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	c.Server = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	kubeconfigs := map[string]kubeconfigUser{
		"admin.kubeconfig":              {name: "kubernetes-admin", certPEM: p.Admin.CertPEM, keyPEM: p.Admin.KeyPEM},
		"controller-manager.kubeconfig": {name: "system:kube-controller-manager", certPEM: p.ControllerMgr.CertPEM, keyPEM: p.ControllerMgr.KeyPEM},
		"scheduler.kubeconfig":          {name: "system:kube-scheduler", certPEM: p.Scheduler.CertPEM, keyPEM: p.Scheduler.KeyPEM},
	}
	for name, u := range kubeconfigs {
		if err := writeFile(filepath.Join(c.Dir, name), kubeconfig(c.Server, p.CA.CertPEM, u)); err != nil {
			fatal("%v", err)
		}
	}
	c.AdminKubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")

	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()

	// etcd first: kube-apiserver retries a missing etcd, but only for a while, and its log then
	// hides the real cause.
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	etcd := c.start(t, "etcd", etcdBin,
		"--name=podagent-test",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=podagent-test="+peerURL,
		"--initial-cluster-state=new",
		"--logger=zap", "--log-level=warn",
	)
	if err := waitFor(ctx, etcd, "etcd /health", func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, etcdURL+"/health")
	}); err != nil {
		fatal("%v", err)
	}
	etcdReady := time.Since(began)

	apiserver := c.start(t, "kube-apiserver", filepath.Join(opts.BinDir, "kube-apiserver"), append([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(apiPort),
		// The lease reconciler refuses a loopback address for the endpoints of
		// services/default/kubernetes; with none the Service still exists, without endpoints.
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"), // never /var/run/kubernetes
		"--tls-cert-file=" + p.APIServer.CertFile, "--tls-private-key-file=" + p.APIServer.KeyFile,
		"--client-ca-file=" + p.CA.CertFile,
		"--authorization-mode=Node,RBAC",
		"--enable-bootstrap-token-auth",
		"--enable-admission-plugins=NodeRestriction", // on top of the default plugins
		"--allow-privileged=true",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.SAPubFile,
		"--service-account-signing-key-file=" + p.SAKeyFile,
		"--kubelet-client-certificate=" + p.KubeletClient.CertFile,
		"--kubelet-client-key=" + p.KubeletClient.KeyFile,
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--profiling=false",
	}, opts.APIServerArgs...)...)
	if err := waitFor(ctx, apiserver, "kube-apiserver /readyz", func(ctx context.Context) error {
		return httpOK(ctx, c.admin, c.Server+"/readyz")
	}); err != nil {
		fatal("%v", err)
	}
	apiReady := time.Since(began)

	cm := c.start(t, "kube-controller-manager", filepath.Join(opts.BinDir, "kube-controller-manager"), append([]string{
		"--kubeconfig=" + filepath.Join(c.Dir, "controller-manager.kubeconfig"),
		"--authentication-kubeconfig=" + filepath.Join(c.Dir, "controller-manager.kubeconfig"),
		"--authorization-kubeconfig=" + filepath.Join(c.Dir, "controller-manager.kubeconfig"),
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(cmPort),
		"--cert-dir=" + filepath.Join(c.Dir, "controller-manager-certs"),
		// The cluster CA is the only client CA: reading kube-system/extension-apiserver-authentication
		// would only log, every second, that it has no front-proxy CA.
		"--client-ca-file=" + p.CA.CertFile, "--authentication-skip-lookup=true",
		"--root-ca-file=" + p.CA.CertFile,
		"--service-account-private-key-file=" + p.SAKeyFile,
		"--use-service-account-credentials=true",
		"--cluster-signing-cert-file=" + p.CA.CertFile,
		"--cluster-signing-key-file=" + p.CA.KeyFile,
		"--controllers=*,bootstrapsigner,tokencleaner",
		"--allocate-node-cidrs=true", "--cluster-cidr=10.244.0.0/16", "--node-cidr-mask-size=24",
		"--service-cluster-ip-range=10.96.0.0/16",
		// One instance per cluster: electing a leader only delays the start by a lease.
		"--leader-elect=false",
		"--profiling=false",
	}, opts.ControllerManagerArgs...)...)

	sched := c.start(t, "kube-scheduler", filepath.Join(opts.BinDir, "kube-scheduler"), append([]string{
		"--kubeconfig=" + filepath.Join(c.Dir, "scheduler.kubeconfig"),
		"--authentication-kubeconfig=" + filepath.Join(c.Dir, "scheduler.kubeconfig"),
		"--authorization-kubeconfig=" + filepath.Join(c.Dir, "scheduler.kubeconfig"),
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(schedPort),
		"--cert-dir=" + filepath.Join(c.Dir, "scheduler-certs"),
		"--client-ca-file=" + p.CA.CertFile, "--authentication-skip-lookup=true",
		"--leader-elect=false",
		"--profiling=false",
	}, opts.SchedulerArgs...)...)

	// /healthz is always allowed without credentials; the serving certificates are self-signed.
	insecure := insecureClient()
	if err := waitFor(ctx, cm, "kube-controller-manager /healthz", func(ctx context.Context) error {
		return httpOK(ctx, insecure, "https://127.0.0.1:"+strconv.Itoa(cmPort)+"/healthz")
	}); err != nil {
		fatal("%v", err)
	}
	if err := waitFor(ctx, sched, "kube-scheduler /healthz", func(ctx context.Context) error {
		return httpOK(ctx, insecure, "https://127.0.0.1:"+strconv.Itoa(schedPort)+"/healthz")
	}); err != nil {
		fatal("%v", err)
	}
	healthy := time.Since(began)
	// The serviceaccount controller's first act; pods can be created in default from then on.
	if err := waitFor(ctx, cm, "ServiceAccount default/default", func(ctx context.Context) error {
		return httpOK(ctx, c.admin, c.Server+"/api/v1/namespaces/default/serviceaccounts/default")
	}); err != nil {
		fatal("%v", err)
	}
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	t.Logf("control plane %s ready at %s in %s (etcd %s, kube-apiserver %s, controller-manager and scheduler %s; dir %s)",
		Version, c.Server, ms(time.Since(began)), ms(etcdReady), ms(apiReady), ms(healthy), c.Dir)
	return c
}

func (c *Cluster) start(t testing.TB, name, bin string, args ...string) *process {
	t.Helper()
	p, err := startProcess(name, filepath.Join(c.Dir, "logs"), bin, args...)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	c.procs = append(c.procs, p)
	return p
}

// Stop stops every component, the last started first, and reports an error if any process
// survives. Start registers it with t.Cleanup; calling it earlier is allowed, and again is a no-op.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		for i := len(c.procs) - 1; i >= 0; i-- {
			if err := c.procs[i].stop(15 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		if left, err := Leftovers(c.Dir); err != nil {
			errs = append(errs, err)
		} else if len(left) > 0 {
			errs = append(errs, fmt.Errorf("processes left running: %q", left))
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// waitFor polls check every 100ms until it succeeds, p exits, or ctx ends.
func waitFor(ctx context.Context, p *process, what string, check func(context.Context) error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if err := p.running(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(attempt)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v (last error: %v)", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// freePorts returns n distinct ports on 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
