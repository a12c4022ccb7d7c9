package manager

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Kiln's roles name every verb and resource they use: a wildcard would hand the manager
// whatever a future Kubernetes release adds, and the privilege-granting verbs would let it
// raise its own rights.
func TestRolesHoldNoWildcardsOrPrivilegeVerbs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	roles := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var r rbacv1.ClusterRole // a Role has the same shape
			if err := d.Decode(&r); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if r.Kind != "Role" && r.Kind != "ClusterRole" {
				continue
			}
			roles++
			for i, rule := range r.Rules {
				for field, values := range map[string][]string{
					"apiGroups": rule.APIGroups, "resources": rule.Resources, "verbs": rule.Verbs,
					"resourceNames": rule.ResourceNames, "nonResourceURLs": rule.NonResourceURLs,
				} {
					if slices.Contains(values, "*") {
						t.Errorf("%s: %s %s rule %d has a wildcard in %s", file, r.Kind, r.Name, i, field)
					}
				}
				for _, verb := range []string{"escalate", "bind", "impersonate"} {
					if slices.Contains(rule.Verbs, verb) {
						t.Errorf("%s: %s %s rule %d grants %q", file, r.Kind, r.Name, i, verb)
					}
				}
			}
		}
	}
	if roles < 3 {
		t.Fatalf("found %d roles under config/; the manifests moved?", roles)
	}
}
