package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/webhook"
	"kiln.dev/kiln/test/framework"
)

// warnings collects the admission warnings the API server passes on.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

func newClient(t *testing.T, cfg *rest.Config, w *warnings) client.Client {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	if w != nil {
		cfg.WarningHandler = w
	}
	scheme, err := manager.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func injection(t *testing.T) webhook.Injection {
	t.Helper()
	in, err := webhook.LoadInjection(filepath.Join(framework.RepoRoot(), "internal", "webhook", "testdata", "inject", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// servingOptions serve the webhooks where the installed configurations call them,
// with the certificate envtest made for them (as cert-manager would provide one).
func servingOptions(t *testing.T) webhook.Options {
	wh := plane.Webhooks()
	return webhook.Options{
		Enabled: true, Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir,
		Namespace: "kiln-system", Injection: injection(t),
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startWebhooks runs a manager with only the webhooks, as the real manager sets them up, and
// waits until it reports ready. The returned function stops it, as a restart or crash would.
func startWebhooks(t *testing.T, cfg *rest.Config, o webhook.Options) (stop func()) {
	t.Helper()
	scheme, err := manager.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	probe := freeAddr(t)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: probe,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.Setup(mgr, o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}
	t.Cleanup(stop)
	framework.Eventually(t, 90*time.Second, func() error {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("manager stopped: %v", err)
		default:
		}
		resp, err := http.Get("http://" + probe + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	return stop
}

func namespace(t *testing.T, c client.Client, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "webhook-", Labels: labels}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func addNode(t *testing.T, c client.Client, name string, res corev1.ResourceName, gpus int64, labels map[string]string) {
	t.Helper()
	capacity := corev1.ResourceList{
		res:                   *resource.NewQuantity(gpus, resource.DecimalSI),
		corev1.ResourceCPU:    resource.MustParse("96"),
		corev1.ResourceMemory: resource.MustParse("1Ti"),
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	n.Status = corev1.NodeStatus{Capacity: capacity, Allocatable: capacity}
	if err := c.Status().Update(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), n) })
}

func trainingJob(ns, name string, gpus int32) *v1alpha1.TrainingJob {
	return &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.TrainingJobSpec{Image: "trainer:1", Resources: v1alpha1.TrainingResources{GPUs: gpus}},
	}
}

// fields are the field paths of an Invalid error, as clients print them.
func fields(t *testing.T, err error) []string {
	t.Helper()
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		t.Fatalf("want an Invalid error with details, got %v", err)
	}
	var out []string
	for _, c := range status.Status().Details.Causes {
		out = append(out, c.Field)
	}
	return out
}

func TestTrainingJobDefaultsRefusalsAndWarnings(t *testing.T) {
	ctx := context.Background()
	var w warnings
	c := newClient(t, plane.Config, &w)
	startWebhooks(t, plane.Config, servingOptions(t))
	ns := namespace(t, c, nil)
	pool := map[string]string{"kiln.dev/pool": "a100"}
	addNode(t, c, "a100-0", "nvidia.com/gpu", 8, pool)
	addNode(t, c, "a100-1", "nvidia.com/gpu", 8, pool)
	addNode(t, c, "mi300-0", "amd.com/gpu", 8, map[string]string{"kiln.dev/pool": "mi300"})

	t.Run("the GPU resource defaults to what the nodes advertise", func(t *testing.T) {
		tj := trainingJob(ns, "amd", 8)
		tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{NodeSelector: map[string]string{"kiln.dev/pool": "mi300"}}
		// The webhook reads nodes from its cache, which may lag the node's creation.
		framework.Eventually(t, 30*time.Second, func() error {
			probe := tj.DeepCopy()
			if err := c.Create(ctx, probe, client.DryRunAll); err != nil {
				return err
			}
			if g := probe.Spec.Resources.GPUResource; g != "amd.com/gpu" {
				return fmt.Errorf("gpuResource = %q", g)
			}
			return nil
		})
		w.take()
		if err := c.Create(ctx, tj); err != nil {
			t.Fatal(err)
		}
		stored := &v1alpha1.TrainingJob{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(tj), stored); err != nil {
			t.Fatal(err)
		}
		if g := stored.Spec.Resources.GPUResource; g != "amd.com/gpu" {
			t.Errorf("stored gpuResource = %q, want amd.com/gpu", g)
		}
		if got := w.take(); len(got) != 1 || !strings.Contains(got[0], "spec.resources.gpuResource set to amd.com/gpu") {
			t.Errorf("warnings = %q, want one explaining the default", got)
		}
	})

	t.Run("refused with every field path", func(t *testing.T) {
		tj := trainingJob(ns, "bad", 16)
		tj.Spec.Topology = &v1alpha1.Topology{Nodes: 1, ProcessesPerNode: 16}
		tj.Spec.Data = []v1alpha1.DataInput{
			{Name: "corpus", URI: "s3://bucket/corpus", SecretRef: &v1alpha1.LocalSecretReference{Name: "missing"}},
			{Name: "shards", URI: "pvc://no-such-claim/train"},
		}
		err := c.Create(ctx, tj)
		// The Secret and claim are missing, but admission does not say so: it would tell
		// anyone allowed to create a TrainingJob which exist. The controller reports them.
		want := []string{"spec.topology.processesPerNode"}
		if d := cmp.Diff(want, fields(t, err)); d != "" {
			t.Errorf("field paths (-want +got):\n%s\n%v", d, err)
		}
		if !strings.Contains(err.Error(), "no node of this cluster could hold one worker") {
			t.Errorf("the refusal does not say why: %v", err)
		}

		// With them present the fixed job is admitted, as it would be without them.
		if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "missing"}}); err != nil {
			t.Fatal(err)
		}
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-such-claim"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}
		if err := c.Create(ctx, pvc); err != nil {
			t.Fatal(err)
		}
		tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 8}
		tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{NodeSelector: pool}
		tj.Spec.Checkpoints = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}
		if err := c.Create(ctx, tj); err != nil {
			t.Errorf("with its Secret and claim present: %v", err)
		}

		// What CEL cannot say, internal/validation does, through the same webhook.
		tj = trainingJob(ns, "bad-pvc-secret", 0)
		tj.Spec.Data = []v1alpha1.DataInput{{Name: "shards", URI: "pvc://shards", SecretRef: &v1alpha1.LocalSecretReference{Name: "s"}}}
		if d := cmp.Diff([]string{"spec.data[0].secretRef"}, fields(t, c.Create(ctx, tj))); d != "" {
			t.Errorf("field paths (-want +got):\n%s", d)
		}
	})

	t.Run("warnings reach the client", func(t *testing.T) {
		tj := trainingJob(ns, "spread", 8)
		tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{NodeSelector: pool}
		tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 4}
		w.take()
		if err := c.Create(ctx, tj); err != nil {
			t.Fatal(err)
		}
		got := w.take()
		if len(got) != 2 || !strings.Contains(got[0], "1 node(s) × 8 GPUs would hold the job") ||
			!strings.Contains(got[1], "runs on 2 nodes without checkpoints") {
			t.Errorf("warnings = %q", got)
		}

		tj = trainingJob(ns, "intel", 4)
		tj.Spec.Resources.GPUResource = "gpu.intel.com/xe"
		if err := c.Create(ctx, tj); err != nil {
			t.Fatal(err)
		}
		if got := w.take(); len(got) != 1 || !strings.Contains(got[0], "no schedulable node advertises gpu.intel.com/xe") {
			t.Errorf("warnings = %q", got)
		}
	})

	t.Run("metadata-only updates are not revalidated", func(t *testing.T) {
		tj := &v1alpha1.TrainingJob{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "spread"}, tj); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(tj.DeepCopy())
		tj.Labels = map[string]string{"team": "vision"}
		w.take()
		if err := c.Patch(ctx, tj, patch); err != nil {
			t.Fatal(err)
		}
		if got := w.take(); len(got) != 0 {
			t.Errorf("a label change drew warnings: %q", got)
		}
		patch = client.MergeFrom(tj.DeepCopy())
		tj.Spec.Image = "trainer:2"
		if err := c.Patch(ctx, tj, patch); !apierrors.IsInvalid(err) {
			t.Errorf("changing the image: %v, want Invalid", err)
		}
	})
}

// kubectl prints admission warnings as a user sees them.
func TestKubectlShowsWarnings(t *testing.T) {
	tools, err := framework.Tools(context.Background(), "kubectl")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, plane.Config, nil)
	startWebhooks(t, plane.Config, servingOptions(t))
	ns := namespace(t, c, nil)
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, plane.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	tj := trainingJob(ns, "no-gpus-here", 4)
	tj.Spec.Resources.GPUResource = "example.com/tpu"
	tj.TypeMeta = metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "TrainingJob"}
	y, err := yaml.Marshal(tj)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "tj.yaml")
	if err := os.WriteFile(file, y, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tools["kubectl"], "--kubeconfig", kubeconfig, "create", "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl create: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Warning: 4 GPUs requested but no schedulable node advertises example.com/tpu") {
		t.Errorf("kubectl printed no warning:\n%s", out)
	}
}

// The golden files of the pod webhook (internal/webhook/testdata/inject), which
// `kubectl kiln inject` also prints, hold through the API server: each input pod,
// created (dry run) in an opted-in namespace, equals its golden pod created the same way.
func TestPodInjectionGolden(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, plane.Config, nil)
	startWebhooks(t, plane.Config, servingOptions(t))
	ns := namespace(t, c, map[string]string{webhook.LabelInject: webhook.InjectEnabled})
	dir := filepath.Join(framework.RepoRoot(), "internal", "webhook", "testdata", "inject")
	goldens, err := filepath.Glob(filepath.Join(dir, "*.golden.yaml"))
	if err != nil || len(goldens) < 4 {
		t.Fatalf("golden files: %v %v", goldens, err)
	}
	admit := func(file string) *corev1.Pod {
		t.Helper()
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{}
		if err := yaml.Unmarshal(data, pod); err != nil {
			t.Fatal(err)
		}
		pod.Namespace = ns
		if err := c.Create(ctx, pod, client.DryRunAll); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return pod
	}
	for _, g := range goldens {
		name := strings.TrimSuffix(filepath.Base(g), ".golden.yaml")
		t.Run(name, func(t *testing.T) {
			got, want := admit(filepath.Join(dir, name+".yaml")), admit(g)
			// The API server's DefaultTolerationSeconds adds its tolerations before any
			// webhook runs, so the order differs; the set must not.
			for _, p := range []*corev1.Pod{got, want} {
				slices.SortFunc(p.Spec.Tolerations, func(a, b corev1.Toleration) int { return strings.Compare(a.Key, b.Key) })
			}
			if d := cmp.Diff(want.Spec, got.Spec); d != "" {
				t.Errorf("spec differs from the golden pod (-want +got):\n%s", d)
			}
			if d := cmp.Diff(want.Annotations, got.Annotations); d != "" {
				t.Errorf("annotations differ from the golden pod (-want +got):\n%s", d)
			}
		})
	}
}

func gpuPod(ns string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "pod-", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "main", Image: "img",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}},
		}}},
	}
}

func gpuTolerated(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Spec.Tolerations, func(t corev1.Toleration) bool { return t.Key == "nvidia.com/gpu" })
}

func TestPodInjectionScope(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, plane.Config, nil)
	startWebhooks(t, plane.Config, servingOptions(t))
	plain := namespace(t, c, nil)
	kilnLabel := map[string]string{webhook.LabelManagedBy: "kiln"}
	for _, ns := range []string{"kiln-system"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		pod      *corev1.Pod
		injected bool
	}{
		{"a Kiln workload's pod in any namespace", gpuPod(plain, kilnLabel), true},
		{"another pod of a namespace not opted in", gpuPod(plain, nil), false},
		{"a Kiln workload's pod with the backdoor label", gpuPod(plain, map[string]string{webhook.LabelManagedBy: "kiln", webhook.LabelInject: "false"}), false},
		{"a Kiln workload's pod in kube-system", gpuPod("kube-system", kilnLabel), false},
		{"a Kiln workload's pod in Kiln's namespace", gpuPod("kiln-system", kilnLabel), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.Create(ctx, tc.pod, client.DryRunAll); err != nil {
				t.Fatal(err)
			}
			_, injected := tc.pod.Annotations[webhook.AnnotationInjected]
			if injected != tc.injected || gpuTolerated(tc.pod) != tc.injected {
				t.Errorf("injected = %v (annotations %v, tolerations %v), want %v",
					injected, tc.pod.Annotations, tc.pod.Spec.Tolerations, tc.injected)
			}
		})
	}
}

// With the webhook process stopped, each webhook behaves as docs/admission.md says.
func TestWebhooksDown(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, plane.Config, nil)
	optedIn := namespace(t, c, map[string]string{webhook.LabelInject: webhook.InjectEnabled})
	plain := namespace(t, c, nil)

	// The defaulting webhook is asked only when it has a GPU resource to choose;
	// either way the job is refused, naming the webhook that could not answer.
	for gpus, hook := range map[int32]string{8: "mtrainingjobs.kiln.dev", 0: "vtrainingjobs.kiln.dev"} {
		err := c.Create(ctx, trainingJob(plain, fmt.Sprintf("while-down-%d", gpus), gpus))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("failed calling webhook %q", hook)) {
			t.Errorf("a TrainingJob of %d GPUs with Kiln's webhooks down: %v, want a refusal naming %s", gpus, err, hook)
		}
	}

	rendered := gpuPod(plain, map[string]string{webhook.LabelManagedBy: "kiln"})
	rendered.Annotations = map[string]string{webhook.AnnotationInjected: ""}

	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		refused bool
	}{
		{"a pod of an opted-in namespace starts without injection", gpuPod(optedIn, nil), false},
		{"a pod of any other namespace is not concerned", gpuPod(plain, nil), false},
		{"a Kiln workload's pod waits for the webhook", gpuPod(plain, map[string]string{webhook.LabelManagedBy: "kiln"}), true},
		// Its match condition keeps the API server from calling the webhook at all.
		{"a Kiln workload's pod injected when it was rendered is not concerned", rendered, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Create(ctx, tc.pod)
			if tc.refused {
				if err == nil || !strings.Contains(err.Error(), `failed calling webhook "workload-pods.kiln.dev"`) {
					t.Errorf("err = %v, want a refusal naming the workload pod webhook", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.pod.Annotations[webhook.AnnotationInjected] != "" || gpuTolerated(tc.pod) {
				t.Errorf("pod was changed: %v %v", tc.pod.Annotations, tc.pod.Spec.Tolerations)
			}
		})
	}
}
