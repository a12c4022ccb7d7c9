package release

import (
	"context"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kiln.dev/kiln/test/framework"
)

// The chart's CRDs, RBAC, webhook configurations and kiln-serving ConfigMap are config/'s,
// byte for byte (make generate copies them).
func TestChartCopiesMatchConfig(t *testing.T) {
	drift, err := ChartDrift(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) > 0 {
		t.Fatalf("the chart's copies of config/ are stale (run make generate):\n%s", strings.Join(drift, "\n"))
	}
}

func helm(t *testing.T) string {
	t.Helper()
	tools, err := framework.Tools(context.Background(), "helm")
	if err != nil {
		t.Fatal(err)
	}
	return tools["helm"]
}

func runHelm(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// What the whole chart can be asked for lints and renders.
func TestChartLintsAndRenders(t *testing.T) {
	bin := helm(t)
	all := []string{"--set", "certManager.enabled=true,push.enabled=true,networkPolicy.enabled=true,namespace.create=true,policy.allowHostPath=true,leaderElection=false"}
	runHelm(t, bin, "lint", "--strict", ChartDir)
	runHelm(t, bin, append([]string{"lint", "--strict", ChartDir}, all...)...)
	out := runHelm(t, bin, append([]string{"template", "kiln", ChartDir, "-n", "ml-platform"}, all...)...)
	objs, err := Decode(out)
	if err != nil {
		t.Fatalf("helm template gave YAML that does not parse: %v", err)
	}
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" && ns != "ml-platform" {
			t.Errorf("%s %s is in namespace %s, not the release's", o.GetKind(), o.GetName(), ns)
		}
	}
	if strings.Contains(string(out), "kiln-system") {
		t.Errorf("a release in ml-platform still names kiln-system somewhere")
	}
}

var testRefs = map[string]string{
	"manager": "registry.example/kiln/kiln-manager@sha256:1111111111111111111111111111111111111111111111111111111111111111",
	"fetch":   "registry.example/kiln/kiln-fetch@sha256:2222222222222222222222222222222222222222222222222222222222222222",
	"build":   "registry.example/kiln/kiln-build@sha256:3333333333333333333333333333333333333333333333333333333333333333",
}

// Helm and kustomize install the same objects, field for field (labels naming the chart aside),
// with the defaults and with every option on: the chart's values and config/'s components.
func TestChartRendersWhatKustomizeDoes(t *testing.T) {
	bin := helm(t)
	var set []string
	for key, ref := range testRefs {
		repo, digest, _ := strings.Cut(ref, "@")
		set = append(set, "images."+key+".repository="+repo, "images."+key+".digest="+digest)
	}
	sort.Strings(set)
	for _, c := range []struct {
		name       string
		values     string
		components []string
	}{
		{"defaults", "", nil},
		{"cert-manager", "certManager.enabled=true", []string{"certmanager"}},
		{"everything", "certManager.enabled=true,networkPolicy.enabled=true,push.enabled=true", Components},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The chart leaves the namespace to the installer unless asked; config/default makes it.
			args := []string{"template", "kiln", ChartDir, "-n", "kiln-system", "--include-crds", "--set", "namespace.create=true," + strings.Join(set, ",")}
			if c.values != "" {
				args = append(args, "--set", c.values)
			}
			chart := objectsByKey(t, runHelm(t, bin, args...))
			k, err := Kustomize(repoRoot(t), c.components...)
			if err != nil {
				t.Fatal(err)
			}
			kust := objectsByKey(t, Pin(k, testRefs))
			if diff := cmp.Diff(keys(kust), keys(chart)); diff != "" {
				t.Fatalf("objects differ (-kustomize +helm):\n%s", diff)
			}
			for key, want := range kust {
				if diff := cmp.Diff(want, chart[key]); diff != "" {
					t.Errorf("%s differs (-kustomize +helm):\n%s", key, diff)
				}
			}
			d := kust["Deployment/kiln-system/kiln-manager"]
			if !strings.Contains(mustJSON(t, d), testRefs["manager"]) || !strings.Contains(mustJSON(t, d), "--fetch-image="+testRefs["fetch"]) {
				t.Errorf("the manager's images are not pinned: %s", mustJSON(t, d))
			}
		})
	}
}

// objectsByKey decodes a stream into kind/namespace/name → object, without the labels only
// Helm's objects carry.
func objectsByKey(t *testing.T, stream []byte) map[string]map[string]any {
	t.Helper()
	objs, err := Decode(stream)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, o := range objs {
		labels := o.GetLabels()
		delete(labels, "helm.sh/chart")
		delete(labels, "app.kubernetes.io/version")
		if len(labels) == 0 {
			labels = nil
		}
		o.SetLabels(labels)
		key := o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
		if _, dup := out[key]; dup {
			t.Fatalf("%s twice", key)
		}
		out[key] = o.Object
	}
	return out
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
