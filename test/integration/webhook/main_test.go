// Package webhook runs Kiln's admission webhooks against a real API server with Kiln's static
// webhook configurations (config/webhook) installed, as envtest installs them: pointed at a
// local port, so the API server calls the webhook server these tests start and stop.
package webhook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/test/framework"
)

var plane *controlplane.Plane

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tools, err := framework.Tools(ctx, "etcd", "kube-apiserver")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	plane, err = controlplane.Start(ctx, controlplane.Options{
		Tools: tools, CRDPaths: framework.CRDPaths(), Out: os.Stderr,
		Webhooks: &envtest.WebhookInstallOptions{Paths: framework.WebhookPaths()},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane:", err)
		return 1
	}
	log, err := os.Create(filepath.Join(plane.Dir, "webhooks.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer log.Close()
	ctrl.SetLogger(zap.New(zap.WriteTo(log)))
	code := m.Run()
	if code != 0 {
		plane.KeepDir()
		fmt.Fprintln(os.Stderr, "control plane logs kept in", plane.Dir)
	}
	if err := plane.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		code = max(code, 1)
	}
	return code
}
