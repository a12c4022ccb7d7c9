package release

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

// What `helm template` renders with every option on is accepted by a real API server, object by
// object (a server-side dry run; the CRDs are really created, so the cert-manager objects are
// left out: their CRDs are cert-manager's).
func TestChartAppliesToARealAPIServer(t *testing.T) {
	ctx := context.Background()
	tools, err := framework.Tools(ctx, "kubectl", "helm")
	if err != nil {
		t.Fatal(err)
	}
	plane, err := framework.Start(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plane.Stop() })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, plane.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(plane.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ml-platform"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out := runHelm(t, tools["helm"], "template", "kiln", ChartDir, "-n", "ml-platform",
		"--set", "push.enabled=true,networkPolicy.enabled=true,podDisruptionBudget.minAvailable=1")
	file := filepath.Join(t.TempDir(), "chart.yaml")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tools["kubectl"], "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", file)
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server of helm template: %v\n%s", err, got)
	}
	for _, want := range []string{"deployment.apps/kiln-manager", "poddisruptionbudget.policy/kiln-manager", "networkpolicy.networking.k8s.io/kiln-manager",
		"service/kiln-push", "mutatingwebhookconfiguration.admissionregistration.k8s.io/kiln-mutating-webhooks", "configmap/kiln-serving"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("applied objects lack %s:\n%s", want, got)
		}
	}
}
