package webhook

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// InjectCases are the golden cases in testdata/inject, shared with the CLI test
// and the integration test that runs them through the API server.
func injectCases(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/inject/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []string
	for _, f := range files {
		base := filepath.Base(f)
		if base == "config.yaml" || strings.HasSuffix(base, ".golden.yaml") {
			continue
		}
		cases = append(cases, strings.TrimSuffix(base, ".yaml"))
	}
	return cases
}

func TestInjectGolden(t *testing.T) {
	in, err := LoadInjection("testdata/inject/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	scope := Scope{Namespace: "team-a", NamespaceLabels: map[string]string{LabelInject: InjectEnabled}, Excluded: ExcludedNamespaces("")}
	for _, name := range injectCases(t) {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata/inject", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			out, _, err := InjectManifests(f, scope, in)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata/inject", name+".golden.yaml"), string(out))

			// Injecting the result again changes nothing.
			again, notes, err := InjectManifests(bytes.NewReader(out), scope, in)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(string(out), string(again)); d != "" {
				t.Errorf("a second injection changed the pod (%v):\n%s", notes, d)
			}
		})
	}
}

func TestSkip(t *testing.T) {
	kiln := map[string]string{LabelManagedBy: managedByKiln}
	optedIn := map[string]string{LabelInject: InjectEnabled}
	cases := []struct {
		name      string
		podLabels map[string]string
		ns        string
		nsLabels  map[string]string
		skipped   bool
	}{
		{"Kiln pod in a plain namespace", kiln, "team-a", nil, false},
		{"plain pod in an opted-in namespace", nil, "team-a", optedIn, false},
		{"plain pod in a plain namespace", nil, "team-a", nil, true},
		{"backdoor label on a Kiln pod", map[string]string{LabelManagedBy: managedByKiln, LabelInject: "false"}, "team-a", optedIn, true},
		{"Kiln pod in kube-system", kiln, "kube-system", optedIn, true},
		{"Kiln pod in Kiln's namespace", kiln, "kiln-system", optedIn, true},
		{"namespace opted in with another value", nil, "team-a", map[string]string{LabelInject: "true"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: tc.podLabels}}
			reason := Skip(pod, Scope{Namespace: tc.ns, NamespaceLabels: tc.nsLabels, Excluded: ExcludedNamespaces("kiln-system")})
			if (reason != "") != tc.skipped {
				t.Errorf("Skip = %q, want skipped=%v", reason, tc.skipped)
			}
		})
	}
}

func TestInjectTolerations(t *testing.T) {
	gpu := corev1.ResourceList{"amd.com/gpu": resource.MustParse("2")}
	cases := []struct {
		name string
		tols []corev1.Toleration
		res  corev1.ResourceList
		want []string
	}{
		{name: "AMD GPU pod", res: gpu, want: []string{"toleration:amd.com/gpu", "shm"}},
		{name: "CPU pod", want: []string{"shm"}},
		{name: "tolerates everything already", res: gpu, tols: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, want: []string{"shm"}},
		{
			name: "a toleration of one value does not cover the taint",
			res:  gpu,
			tols: []corev1.Toleration{{Key: "amd.com/gpu", Operator: corev1.TolerationOpEqual, Value: "x", Effect: corev1.TaintEffectNoSchedule}},
			want: []string{"toleration:amd.com/gpu", "shm"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{
				Tolerations: tc.tols,
				Containers:  []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: tc.res}}},
			}}
			if d := cmp.Diff(tc.want, Inject(pod, Injection{})); d != "" {
				t.Errorf("changes (-want +got):\n%s", d)
			}
		})
	}
}

// A template injected when Kiln renders it is marked even when nothing was added, so the
// webhook's match condition lets its pods through without a call.
func TestInjectTemplateMarksTheTemplate(t *testing.T) {
	in := Injection{Sidecars: []Sidecar{{Container: corev1.Container{Name: "metrics", Image: "m:1"}}}}
	for _, tc := range []struct {
		name string
		in   Injection
		want string
	}{
		{"nothing to add", Injection{SharedMemory: SharedMemory{Disabled: true}}, ""},
		{"a sidecar to add", in, "shm,sidecar:metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "img"}}}}
			InjectTemplate(tmpl, tc.in)
			got, ok := tmpl.Annotations[AnnotationInjected]
			if !ok || got != tc.want {
				t.Errorf("annotation %q (present %v), want %q", got, ok, tc.want)
			}
		})
	}
}

// The webhook's patch, applied to the pod as the API server sends it, makes the pod Inject
// makes: for every golden case, and for pods with and without annotations and mounts.
func TestInjectionPatchMakesTheInjectedPod(t *testing.T) {
	in, err := LoadInjection("testdata/inject/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range injectCases(t) {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/inject", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range strings.Split(string(data), "\n---\n") {
				pod := &corev1.Pod{}
				if err := yaml.Unmarshal([]byte(doc), pod); err != nil {
					t.Fatal(err)
				}
				before := pod.DeepCopy()
				if len(Inject(pod, in)) == 0 {
					continue
				}
				original, err := json.Marshal(before)
				if err != nil {
					t.Fatal(err)
				}
				ops, err := json.Marshal(injectionPatch(before, pod))
				if err != nil {
					t.Fatal(err)
				}
				patch, err := jsonpatch.DecodePatch(ops)
				if err != nil {
					t.Fatal(err)
				}
				patched, err := patch.Apply(original)
				if err != nil {
					t.Fatalf("applying %s: %v", ops, err)
				}
				got := &corev1.Pod{}
				if err := json.Unmarshal(patched, got); err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(pod, got); d != "" {
					t.Errorf("pod %s: the patch makes another pod than Inject (-inject +patch):\n%s", pod.Name, d)
				}
			}
		})
	}
}
