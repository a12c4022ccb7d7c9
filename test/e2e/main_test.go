// Package e2e runs Kiln end to end on one shared full control plane: a real API server, etcd,
// controller manager and scheduler, with kwok simulating GPU nodes.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/manager"
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
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	cfg, err := framework.ManagerConfig(ctx, plane.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager credentials:", err)
		return 1
	}
	mgr, err := manager.New(cfg, manager.Options{MetricsAddr: "0", ProbeAddr: "0", Webhooks: framework.WebhookOptions(plane)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := 1
	if err := framework.WaitForWebhooks(plane, time.Minute); err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager:", err)
	} else {
		code = run()
	}
	stop()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager:", err)
		code = max(code, 1)
	}
	return code
}

func clientset(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(plane.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
