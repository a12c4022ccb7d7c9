package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/test/framework"
)

// The install manifests are what users apply to their clusters: the real API server must accept
// every object in them.
func TestInstallManifestsApplyToARealAPIServer(t *testing.T) {
	tools, err := framework.Tools(context.Background(), "kubectl")
	if err != nil {
		t.Fatal(err)
	}
	// A cluster without Kiln: the shared plane's webhook configurations point at the in-process
	// manager's URL, which the manifests' Service reference cannot patch over.
	bare, err := framework.Start(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bare.Stop() })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, bare.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	// A server-side dry run checks every object but creates none; only the namespace must
	// really exist for the namespaced objects to be checked.
	cs, err := kubernetes.NewForConfig(bare.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kiln-system"}}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	cmd := exec.Command(tools["kubectl"], "--kubeconfig", kubeconfig, "apply", "--dry-run=server",
		"-k", filepath.Join(framework.RepoRoot(), "config", "default"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply -k config/default: %v\n%s", err, out)
	}
	for _, want := range []string{
		"customresourcedefinition.apiextensions.k8s.io/trainingjobs.kiln.dev",
		"customresourcedefinition.apiextensions.k8s.io/modelservers.kiln.dev", "configmap/kiln-serving",
		"clusterrole.rbac.authorization.k8s.io/kiln-manager", "deployment.apps/kiln-manager",
		"mutatingwebhookconfiguration.admissionregistration.k8s.io/kiln-mutating-webhooks",
		"validatingwebhookconfiguration.admissionregistration.k8s.io/kiln-validating-webhooks",
		"service/kiln-webhook-service", "poddisruptionbudget.policy/kiln-manager",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("applied objects lack %s:\n%s", want, out)
		}
	}
}
