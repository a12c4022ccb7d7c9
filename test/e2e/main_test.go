// Package e2e runs Kiln end to end on one shared full control plane: a real API server, etcd,
// controller manager and scheduler, with kwok simulating GPU nodes.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/manager"
	pushdeploy "kiln.dev/kiln/internal/push"
	"kiln.dev/kiln/test/framework"
)

// pools has both node shapes Kiln chooses between, and a CPU node.
const pools = "a100=2x8,l4=2x4@NVIDIA-L4,cpu=2x0"

var plane *controlplane.Plane

func TestMain(m *testing.M) {
	os.Exit(framework.Main(func() int { return withManager(m.Run) }, pools, time.Second, &plane, framework.WithWebhooks()))
}

// withManager runs Kiln's manager in-process against the plane while the tests run, with its
// own ServiceAccount's credentials and RBAC, logging beside the components (kept when a test
// fails).
func withManager(run func() int) int {
	log, err := os.Create(filepath.Join(plane.Dir, "kiln-manager.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager:", err)
		return 1
	}
	defer log.Close()
	ctrl.SetLogger(zap.New(zap.WriteTo(log)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	// The manager serves push below, so it gets push's RBAC as config/push grants it.
	cfg, err := framework.ManagerConfig(ctx, plane.Config, "push")
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager credentials:", err)
		return 1
	}
	kilnManager.config = cfg
	if err := kilnManager.start(); err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager:", err)
		return 1
	}
	code := run()
	if err := kilnManager.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager:", err)
		code = max(code, 1)
	}
	return code
}

// kiln is the in-process manager. Tests that kill it mid-work stop and start it again.
var kilnManager managerProcess

type managerProcess struct {
	// config holds the manager ServiceAccount's token.
	config *rest.Config
	cancel context.CancelFunc
	done   chan error
	// sweepMetrics is the push server's address, kept across restarts so trials
	// created before one still reach it.
	sweepMetrics string
	// push is the push-to-deploy receiver's own address (never the webhook server's).
	push string
}

func (m *managerProcess) start() error {
	if m.sweepMetrics == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		m.sweepMetrics = l.Addr().String()
		l.Close()
	}
	if m.push == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		m.push = l.Addr().String()
		l.Close()
	}
	webhooks := framework.WebhookOptions(plane)
	mgr, err := manager.New(m.config, manager.Options{
		MetricsAddr: "0", ProbeAddr: "0", SkipNameValidation: true,
		Webhooks: webhooks,
		// The receiver on its own port, with the webhooks' certificate; test Git
		// servers listen on loopback, which an administrator would allow by name.
		Push: manager.PushOptions{Enabled: true, AllowedHosts: []string{"127.0.0.1"},
			Server: pushdeploy.ServerOptions{Addr: m.push, CertDir: webhooks.CertDir},
			Build:  pushdeploy.Options{BuildImage: "kiln-build:e2e"}},
		Sweep: manager.SweepOptions{MetricsAddr: m.sweepMetrics, MetricsURL: "http://" + m.sweepMetrics, LogInterval: 2 * time.Second},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan error, 1)
	go func() { m.done <- mgr.Start(ctx) }()
	// Kiln's objects are refused while the webhooks are away, and trials' pushes while the
	// metrics server is: tests go on once both serve.
	if err := framework.WaitForWebhooks(plane, time.Minute); err != nil {
		return errors.Join(err, m.stop())
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		conn, err := net.Dial("tcp", m.sweepMetrics)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("the Sweep metrics server does not listen: %w", err), m.stop())
		}
	}
}

// stop cancels the manager and waits until it has stopped.
func (m *managerProcess) stop() error {
	m.cancel()
	return <-m.done
}

func clientset(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(plane.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// planeKubeconfig is the shared plane's kubeconfig in a file, for the CLI and kubectl.
func planeKubeconfig(t *testing.T) string {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, plane.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}
