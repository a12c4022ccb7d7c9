// Package framework starts the real control planes Kiln's integration and end-to-end tests run
// against, with the components built (once, then cached) from their pinned Go modules.
package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/devtools"
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

// Start runs a plane: API server and etcd only when pools is empty, the full plane otherwise.
func Start(ctx context.Context, pools string, podRunTime time.Duration) (*controlplane.Plane, error) {
	o := controlplane.Options{CRDPaths: CRDPaths(), PodRunTime: podRunTime, Out: os.Stderr}
	names := []string{"etcd", "kube-apiserver"}
	if pools != "" {
		ps, err := controlplane.ParsePools(pools)
		if err != nil {
			return nil, err
		}
		o.Pools = ps
		names = devtools.ControlPlaneTools
	}
	tools, err := Tools(ctx, names...)
	if err != nil {
		return nil, err
	}
	o.Tools = tools
	return controlplane.Start(ctx, o)
}

// Main runs a package's tests against one shared plane, keeping its logs when a test fails.
func Main(run func() int, pools string, podRunTime time.Duration, plane **controlplane.Plane) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	p, err := Start(ctx, pools, podRunTime)
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
