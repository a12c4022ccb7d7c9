// Package framework starts the real control planes Kiln's integration and end-to-end tests run
// against, with the components built (once, then cached) from their pinned Go modules.
package framework

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/devtools"
	"kiln.dev/kiln/internal/webhook"
)

// RepoRoot is the Kiln checkout the tests run from.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Tools returns the paths of the named tools, building missing ones.
func Tools(ctx context.Context, names ...string) (map[string]string, error) {
	c := &devtools.Cache{SourceDir: filepath.Join(RepoRoot(), "hack", "tools"), Out: os.Stderr}
	return c.Ensure(ctx, names...)
}

// CRDPaths are Kiln's generated CustomResourceDefinitions.
func CRDPaths() []string { return []string{filepath.Join(RepoRoot(), "config", "crd", "bases")} }

// WebhookPaths are Kiln's static webhook configurations, as config/webhook installs them.
func WebhookPaths() []string {
	return []string{filepath.Join(RepoRoot(), "config", "webhook", "manifests.yaml")}
}

// Option adjusts a plane before it starts.
type Option func(*controlplane.Options)

// WithWebhooks installs Kiln's webhook configurations, pointed at a local address the tests'
// manager serves (WebhookOptions), as on a real install.
func WithWebhooks() Option {
	return func(o *controlplane.Options) {
		o.Webhooks = &envtest.WebhookInstallOptions{Paths: WebhookPaths()}
	}
}

// WithRealNode adds a real node (containerd, kubelet, kube-proxy, CoreDNS) beside the pools.
func WithRealNode() Option {
	return func(o *controlplane.Options) { o.RealNode = true }
}

// WebhookOptions serve Kiln's webhooks where the plane's configurations call them, with the
// certificate envtest made for them.
func WebhookOptions(p *controlplane.Plane) webhook.Options {
	wh := p.Webhooks()
	return webhook.Options{Enabled: true, Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir}
}

// WaitForWebhooks waits until the webhook server accepts TLS connections, so no test meets a
// webhook that is not up yet (Kiln's kinds would be refused).
func WaitForWebhooks(p *controlplane.Plane, timeout time.Duration) error {
	wh := p.Webhooks()
	addr := net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort))
	deadline := time.Now().Add(timeout)
	for {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only a liveness probe
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server at %s: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Start runs a plane: API server and etcd only when pools is empty, the full plane otherwise.
func Start(ctx context.Context, pools string, podRunTime time.Duration, opts ...Option) (*controlplane.Plane, error) {
	o := controlplane.Options{CRDPaths: CRDPaths(), PodRunTime: podRunTime, Out: os.Stderr}
	for _, opt := range opts {
		opt(&o)
	}
	names := []string{"etcd", "kube-apiserver"}
	if pools != "" {
		ps, err := controlplane.ParsePools(pools)
		if err != nil {
			return nil, err
		}
		o.Pools = ps
		names = devtools.ControlPlaneTools
	}
	if o.RealNode {
		names = append(append([]string{}, devtools.ControlPlaneTools...), devtools.NodeTools...)
	}
	tools, err := Tools(ctx, names...)
	if err != nil {
		return nil, err
	}
	o.Tools = tools
	return controlplane.Start(ctx, o)
}

// Main runs a package's tests against one shared plane, keeping its logs when a test fails.
func Main(run func() int, pools string, podRunTime time.Duration, plane **controlplane.Plane, opts ...Option) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	p, err := Start(ctx, pools, podRunTime, opts...)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane:", err)
		return 1
	}
	*plane = p
	code := run()
	if code != 0 {
		p.KeepDir()
		fmt.Fprintln(os.Stderr, "control plane logs kept in", p.Dir)
	}
	if err := p.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Eventually retries check until it returns nil, failing the test with check's last error
// when timeout passes.
func Eventually(t interface {
	Helper()
	Fatalf(string, ...any)
}, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
