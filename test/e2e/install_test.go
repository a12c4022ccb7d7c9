package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"kiln.dev/kiln/test/framework"
)

// The install manifests are what users apply to their clusters: the real API server must accept
// every object in them.
func TestInstallManifestsApplyToARealAPIServer(t *testing.T) {
	tools, err := framework.Tools(context.Background(), "kubectl")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, plane.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	// A server-side dry run checks every object but creates none, so the shared plane stays as
	// it was; the namespace exists already, since the tests' manager runs with config/rbac.
	cmd := exec.Command(tools["kubectl"], "--kubeconfig", kubeconfig, "apply", "--dry-run=server",
		"-k", filepath.Join(framework.RepoRoot(), "config", "default"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply -k config/default: %v\n%s", err, out)
	}
	for _, want := range []string{
		"customresourcedefinition.apiextensions.k8s.io/trainingjobs.kiln.dev",
		"clusterrole.rbac.authorization.k8s.io/kiln-manager", "deployment.apps/kiln-manager",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("applied objects lack %s:\n%s", want, out)
		}
	}
}
