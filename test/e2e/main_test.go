// Package e2e runs Kiln end to end on one shared full control plane: a real API server, etcd,
// controller manager and scheduler, with kwok simulating GPU nodes.
package e2e

import (
	"os"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/test/framework"
)

// pools has both node shapes Kiln chooses between, and a CPU node.
const pools = "a100=2x8,l4=2x4@NVIDIA-L4,cpu=1x0"

var plane *controlplane.Plane

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m.Run, pools, time.Second, &plane))
}

func clientset(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(plane.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
