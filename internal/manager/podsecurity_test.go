package manager

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
	"kiln.dev/kiln/internal/podsecurity"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/render/serving"
	"kiln.dev/kiln/internal/validation"
)

// Kiln's own pods run under the restricted Pod Security profile, the one its namespace
// enforces: checked here with the admission plugin's own checks on what
// `kubectl apply -k config/default` installs, so a manifest change that would be refused at
// install fails a test first.
func TestPlatformPodsMeetTheRestrictedProfile(t *testing.T) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join("..", "..", "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	if n := checkWorkloads(t, "config/default", data, ""); n == 0 {
		t.Fatal("config/default installs no workloads")
	}
}

// Every pod Kiln renders for a tenant is admitted in a namespace that enforces the
// restricted profile. The renderers' golden files are their output for every case they
// test (each framework, MPI, data fetches, notebooks, serving with canaries and
// downloads), so each is checked here as the API server would check it; a new golden
// case is checked without touching this test.
func TestRenderedPodsMeetTheRestrictedProfile(t *testing.T) {
	var files []string
	for _, pattern := range []string{
		"../render/testdata/*.golden.yaml",
		"../render/testdata/notebook/*.golden.yaml",
		"../render/serving/testdata/*.golden.yaml",
		"../render/testdata/buildjob/source*.golden.yaml",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 {
			t.Fatalf("no golden files match %s", pattern)
		}
		files = append(files, m...)
	}
	// What a golden case asks for beyond the default policy, with the one check that
	// it is expected to fail for that reason.
	beyondPolicy := map[string]string{
		// network.hostNetwork, which only the manager's --allow-host-network lets through.
		"render/testdata/jax.golden.yaml": "host namespaces",
	}
	// Dockerfile builds (testdata/buildjob/public, private) run Kaniko, which needs root:
	// they meet baseline only, as docs/build.md says; render's own test holds them to it.
	kinds := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range mustWorkloads(t, data) {
			kinds[w.Kind] = true
		}
		name := strings.TrimPrefix(f, "../")
		checkWorkloads(t, name, data, beyondPolicy[name])
	}
	for _, k := range []string{"Job", "Deployment", "StatefulSet"} {
		if !kinds[k] {
			t.Errorf("no golden file renders a %s", k)
		}
	}
}

// Cases no golden file has: an MPI job that also fetches data, a Sweep's trial, and the
// security-context overlays a user may set without the administrator. Overlays the policy
// refuses are shown to break the profile, which is why the policy refuses them.
func TestRenderedPodsWithOverlaysMeetTheRestrictedProfile(t *testing.T) {
	nonRoot := &corev1.SecurityContext{
		RunAsUser:    ptr.To[int64](1000),
		RunAsGroup:   ptr.To[int64](1000),
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}},
	}
	rdma := &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"IPC_LOCK"}}}
	root := &corev1.SecurityContext{RunAsUser: ptr.To[int64](0)}
	escalate := &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(true)}

	tests := []struct {
		name string
		pod  func(t *testing.T) corev1.PodTemplateSpec
		// restricted is whether the pod should meet the profile; policy whether the
		// default admin policy lets the object through.
		restricted, policy bool
	}{
		{"mpi with a data fetch", trainingPod(v1alpha1.FrameworkMPI, 16, nil), true, true},
		{"pytorch with a non-root overlay", trainingPod(v1alpha1.FrameworkPyTorch, 8, nonRoot), true, true},
		{"sweep trial", sweepTrialPod, true, true},
		{"notebook with a non-root overlay", notebookPod(nonRoot), true, true},
		{"modelserver canary with a non-root overlay", servingPod(nonRoot), true, true},
		{"pytorch adding IPC_LOCK", trainingPod(v1alpha1.FrameworkPyTorch, 8, rdma), false, false},
		{"notebook as root", notebookPod(root), false, false},
		{"modelserver escalating", servingPod(escalate), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := tt.pod(t)
			problems, err := podsecurity.Restricted(&pod.ObjectMeta, &pod.Spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(problems) == 0; got != tt.restricted {
				t.Errorf("meets restricted = %v, want %v: %v", got, tt.restricted, problems)
			}
		})
	}
	// The policy side of the same overlays, so the two stay in step.
	pol := validation.Policy{}
	for _, tc := range []struct {
		sc   *corev1.SecurityContext
		want bool
	}{{nonRoot, true}, {rdma, false}, {root, false}, {escalate, false}} {
		errs := pol.ContainerSecurityContext(tc.sc, nil)
		if got := len(errs) == 0; got != tc.want {
			t.Errorf("default policy allows %+v = %v, want %v: %v", tc.sc, got, tc.want, errs)
		}
	}
}

func trainingJob(framework v1alpha1.Framework, gpus int32, sc *corev1.SecurityContext) *v1alpha1.TrainingJob {
	tj := &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{Name: "train", Namespace: "team", UID: "1"},
		Spec: v1alpha1.TrainingJobSpec{
			Image:     "registry.example/train:v1",
			Framework: framework,
			Command:   []string{"python", "train.py"},
			Resources: v1alpha1.TrainingResources{GPUs: gpus, GPUResource: string(v1alpha1.DefaultGPUResource)},
			Data: []v1alpha1.DataInput{
				{Name: "corpus", URI: "s3://bucket/corpus", SecretRef: &v1alpha1.LocalSecretReference{Name: "s3"}},
				{Name: "vocab", URI: "pvc://shared/vocab"},
			},
			Checkpoints: &v1alpha1.VolumeSpec{Size: resource.MustParse("10Gi")},
		},
	}
	if sc != nil {
		tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{ContainerSecurityContext: sc}
	}
	return tj
}

func renderTrainingPod(t *testing.T, tj *v1alpha1.TrainingJob) corev1.PodTemplateSpec {
	t.Helper()
	nodes := []placement.NodeShape{{Pool: "a100", GPUsPerNode: 8, Count: 4}}
	shape, err := placement.ForTrainingJob(&tj.Spec, nodes)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := render.TrainingJob(tj, shape, render.Options{FetchImage: "registry.example/kiln-fetch:v1"})
	if err != nil {
		t.Fatal(err)
	}
	return objs.Job.Spec.Template
}

func trainingPod(framework v1alpha1.Framework, gpus int32, sc *corev1.SecurityContext) func(*testing.T) corev1.PodTemplateSpec {
	return func(t *testing.T) corev1.PodTemplateSpec {
		return renderTrainingPod(t, trainingJob(framework, gpus, sc))
	}
}

func sweepTrialPod(t *testing.T) corev1.PodTemplateSpec {
	sw := &v1alpha1.Sweep{
		ObjectMeta: metav1.ObjectMeta{Name: "tune", Namespace: "team", UID: "2"},
		Spec: v1alpha1.SweepSpec{
			Parameters:    []v1alpha1.SweepParameter{{Name: "lr", Type: v1alpha1.ParameterFloat}},
			TrialTemplate: trainingJob(v1alpha1.FrameworkPyTorch, 0, nil).Spec,
		},
	}
	tj, err := render.Trial(sw, 0, map[string]string{"lr": "0.1"}, render.TrialOptions{MetricsURL: "http://kiln.example"})
	if err != nil {
		t.Fatal(err)
	}
	return renderTrainingPod(t, tj)
}

func notebookPod(sc *corev1.SecurityContext) func(*testing.T) corev1.PodTemplateSpec {
	return func(t *testing.T) corev1.PodTemplateSpec {
		nb := &v1alpha1.Notebook{
			ObjectMeta: metav1.ObjectMeta{Name: "lab", Namespace: "team", UID: "3"},
			Spec: v1alpha1.NotebookSpec{
				Resources:                v1alpha1.NotebookResources{GPUs: 1},
				Volumes:                  []v1alpha1.NotebookVolume{{Name: "model", URI: "trainingjob://train"}},
				ContainerSecurityContext: sc,
			},
		}
		objs, err := render.Notebook(nb, render.NotebookOptions{Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		return objs.StatefulSet.Spec.Template
	}
}

func servingPod(sc *corev1.SecurityContext) func(*testing.T) corev1.PodTemplateSpec {
	return func(t *testing.T) corev1.PodTemplateSpec {
		ms := &v1alpha1.ModelServer{
			ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: "team", UID: "4"},
			Spec: v1alpha1.ModelServerSpec{
				Model:                    v1alpha1.ModelSource{URI: "s3://bucket/llm"},
				Runtime:                  v1alpha1.ServingRuntime{Preset: "vllm"},
				Resources:                v1alpha1.ServingResources{GPUs: 1},
				Canary:                   &v1alpha1.CanarySpec{Model: &v1alpha1.ModelSource{URI: "trainingjob://train"}, TrafficPercent: 10},
				ContainerSecurityContext: sc,
			},
		}
		cfg := serving.DefaultConfig()
		cfg.FetchImage = "registry.example/kiln-fetch:v1"
		objs, err := serving.ModelServer(ms, serving.Options{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		// The canary downloads nothing; the stable version does, so its pod is the one
		// with two containers. Both must pass; the canary is checked by the goldens.
		return objs.Stable.Deployment.Spec.Template
	}
}

func mustWorkloads(t *testing.T, data []byte) []podsecurity.Workload {
	t.Helper()
	ws, err := podsecurity.Workloads(data)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// checkWorkloads reports every workload of a YAML stream that breaks the restricted
// profile other than by the check named expected, and returns how many it checked.
func checkWorkloads(t *testing.T, source string, data []byte, expected string) int {
	t.Helper()
	ws := mustWorkloads(t, data)
	for _, w := range ws {
		problems, err := podsecurity.Restricted(&w.Template.ObjectMeta, &w.Template.Spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			if expected != "" && strings.HasPrefix(p, expected) {
				continue
			}
			t.Errorf("%s: %s %s breaks the restricted profile: %s", source, w.Kind, w.Name, p)
		}
	}
	return len(ws)
}
