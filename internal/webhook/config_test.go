package webhook

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestManifests keeps config/webhook/manifests.yaml equal to the configurations
// the code describes: a kind registered in kinds() appears there by running
// go test ./internal/webhook -update.
func TestManifests(t *testing.T) {
	mut, val, err := Configurations(testScheme(t), DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# Generated from internal/webhook (Configurations) by go test ./internal/webhook -update; do not edit.\n")
	b.WriteString("# caBundle is left out on purpose: Kiln or cert-manager injects it in the cluster (docs/admission.md).\n")
	for _, o := range []any{mut, val} {
		y, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	golden(t, "../../config/webhook/manifests.yaml", b.String())
}
