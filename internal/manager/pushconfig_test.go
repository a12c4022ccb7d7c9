package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Push is off in config/default; the push component turns it on with its own
// port, which the kiln-push Service routes to, and never the webhook port.
func TestPushComponent(t *testing.T) {
	abs, err := filepath.Abs(filepath.Join("..", "..", "config"))
	if err != nil {
		t.Fatal(err)
	}
	// Kustomize takes relative paths only: the overlay lives beside config/default for the test.
	overlay, err := os.MkdirTemp(abs, ".push-overlay-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(overlay) })
	k := "resources:\n- ../default\ncomponents:\n- ../components/push\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir  string
		push bool
	}{{filepath.Join(abs, "default"), false}, {overlay, true}} {
		res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), tc.dir)
		if err != nil {
			t.Fatal(err)
		}
		data, err := res.AsYaml()
		if err != nil {
			t.Fatal(err)
		}
		var manager *appsv1.Deployment
		var svc *corev1.Service
		d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var obj struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			var raw map[string]any
			if err := d.Decode(&raw); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			b, _ := yamlJSON(raw)
			_ = utilyaml.Unmarshal(b, &obj)
			switch {
			case obj.Kind == "Deployment" && obj.Metadata.Name == "kiln-manager":
				manager = &appsv1.Deployment{}
				_ = utilyaml.Unmarshal(b, manager)
			case obj.Kind == "Service" && obj.Metadata.Name == PushServiceName:
				svc = &corev1.Service{}
				_ = utilyaml.Unmarshal(b, svc)
			}
		}
		if manager == nil || svc == nil {
			t.Fatalf("%s: no manager Deployment or %s Service", tc.dir, PushServiceName)
		}
		c := manager.Spec.Template.Spec.Containers[0]
		if got := slices.Contains(c.Args, "--push"); got != tc.push {
			t.Errorf("%s: --push in the manager's args is %v, want %v: %v", tc.dir, got, tc.push, c.Args)
		}
		port := svc.Spec.Ports[0].TargetPort.String()
		found := false
		for _, p := range c.Ports {
			if p.Name == port {
				found = true
				if p.ContainerPort != 9444 {
					t.Errorf("%s: the %s Service routes to port %d, want 9444", tc.dir, PushServiceName, p.ContainerPort)
				}
			}
		}
		if found != tc.push {
			t.Errorf("%s: the %s Service's target port %q exists: %v, want %v", tc.dir, PushServiceName, port, found, tc.push)
		}
	}
}

func yamlJSON(v map[string]any) ([]byte, error) { return json.Marshal(v) }
