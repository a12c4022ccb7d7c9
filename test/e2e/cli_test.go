package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/test/framework"
)

// The CLI as a data scientist uses it, against the shared plane: train, watch, status, export,
// run the export without Kiln, delete.
func TestCLITrainStatusExportDelete(t *testing.T) {
	ctx := context.Background()
	k := buildKiln(t)
	ns := namespace(t)
	kubeconfig := planeKubeconfig(t)
	kiln := func(args ...string) (string, error) {
		return k.run(t, append([]string{"--kubeconfig=" + kubeconfig, "-n", ns}, args...)...)
	}

	out, err := kiln("train", "cli-job", "--gpus", "8", "--framework", "pytorch", "--image", "registry.example/resnet:1",
		"--checkpoints", "1Gi", "--watch", "--timeout", "2m", "--", "python", "train.py")
	if err != nil {
		t.Fatalf("train --watch: %v\n%s", err, out)
	}
	for _, want := range []string{"trainingjob.kiln.dev/cli-job created", "cli-job running [1x8", "cli-job succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("train --watch output lacks %q:\n%s", want, out)
		}
	}

	// The API server's warnings, admission's advice among them, reach the user once each.
	out, err = kiln("train", "two-nodes", "--gpus", "16", "--framework", "pytorch", "--image", "registry.example/resnet:1",
		"--dry-run=server", "--", "python", "train.py")
	if err != nil || strings.Count(out, "Warning: ") != 1 || !strings.Contains(out, "runs on 2 nodes without checkpoints") {
		t.Errorf("train of 16 GPUs without checkpoints: %v; want one warning about checkpoints:\n%s", err, out)
	}

	out, err = kiln("get", "-o", "wide")
	if err != nil || !strings.Contains(out, "cli-job") || !strings.Contains(out, "1x8") || !strings.Contains(out, "Succeeded") {
		t.Errorf("get -o wide: %v\n%s", err, out)
	}

	out, err = kiln("status", "cli-job")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []string{"TrainingJob " + ns + "/cli-job: succeeded", "shape 1x8:", "Job cli-job-a0", "Pod cli-job-a0-0", "rank 0", "PersistentVolumeClaim cli-job-checkpoints", "Conditions:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// On simulated nodes kwok serves each container's log where the kubelet would.
	out, err = kiln("logs", "cli-job")
	if err != nil || !strings.HasPrefix(out, "[rank 0] simulated node: no process runs here") {
		t.Errorf("logs: %v\n%s", err, out)
	}
	out, err = kiln("logs", "cli-job", "--rank", "1")
	if err == nil || !strings.Contains(out, "no worker with rank 1 in cli-job-a0 (it has 1 node(s))") {
		t.Errorf("logs --rank 1 of a one-node job: %v\n%s", err, out)
	}

	// The export runs on the cluster with plain kubectl, in a namespace Kiln never saw.
	exported, err := kiln("export", "cli-job")
	if err != nil {
		t.Fatalf("export: %v\n%s", err, exported)
	}
	if strings.Contains(exported, "kiln.dev/v1alpha1") || strings.Contains(exported, "ownerReferences") {
		t.Fatalf("export must hold only native objects without owners:\n%s", exported)
	}
	plain := namespace(t)
	exported = strings.ReplaceAll(exported, "namespace: "+ns, "namespace: "+plain)
	tools, err := framework.Tools(ctx, "kubectl")
	if err != nil {
		t.Fatal(err)
	}
	apply := exec.Command(tools["kubectl"], "--kubeconfig", kubeconfig, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(exported)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply of the export: %v\n%s", err, out)
	}
	cs := clientset(t)
	framework.Eventually(t, time.Minute, func() error {
		j, err := cs.BatchV1().Jobs(plain).Get(ctx, "cli-job-a0", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if j.Status.Succeeded != 1 {
			return fmt.Errorf("exported job: succeeded %d, active %d", j.Status.Succeeded, j.Status.Active)
		}
		return nil
	})

	// And on a cluster that has never heard of Kiln (no CRDs), it makes the same workload.
	bare, err := controlplane.Start(ctx, controlplane.Options{Tools: mustTools(t, "etcd", "kube-apiserver")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bare.Stop() })
	apply = exec.Command(tools["kubectl"], "--kubeconfig", bare.KubeConfigPath, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(strings.ReplaceAll(exported, "namespace: "+plain, "namespace: default"))
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply of the export to a cluster without Kiln: %v\n%s", err, out)
	}
	bareCS, err := kubernetes.NewForConfig(bare.Config)
	if err != nil {
		t.Fatal(err)
	}
	plainJob, err := bareCS.BatchV1().Jobs("default").Get(ctx, "cli-job-a0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kilnJob, err := cs.BatchV1().Jobs(ns).Get(ctx, "cli-job-a0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(kilnJob.Spec.Template.Spec.Containers, plainJob.Spec.Template.Spec.Containers); d != "" {
		t.Errorf("the exported Job's containers differ from those Kiln created (-kiln +export):\n%s", d)
	}
	if *plainJob.Spec.Completions != *kilnJob.Spec.Completions || *plainJob.Spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("exported Job: completions %d mode %s, Kiln's: %d", *plainJob.Spec.Completions, *plainJob.Spec.CompletionMode, *kilnJob.Spec.Completions)
	}

	out, err = kiln("delete", "cli-job")
	if err != nil || !strings.Contains(out, "trainingjob.kiln.dev/cli-job deleted") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	out, err = kiln("status", "cli-job")
	if err == nil || !strings.Contains(out, `no TrainingJob "cli-job"`) {
		t.Fatalf("status after delete should say it is gone: %v\n%s", err, out)
	}
}

func TestCLIDoctorReportsTheSimulatedGPUPool(t *testing.T) {
	k := buildKiln(t)
	kubeconfig := planeKubeconfig(t)
	out, err := k.run(t, "--kubeconfig="+kubeconfig, "doctor")
	// No device-plugin DaemonSet on a simulated plane: a warning, not a failure.
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	for _, want := range []string{"✓ Kubernetes v1.37.2", "✓ Kiln's API (kiln.dev/v1alpha1) is installed",
		"✓ 24 GPU(s) on 2 node shape(s)", "2×8", "2×4", "NVIDIA-A100-SXM4-80GB, NVIDIA-L4",
		"! no GPU device-plugin DaemonSet found", "✓ ReadWriteMany storage: kiln-local (kiln.dev/local-path)", "- Kueue not installed"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
}

func TestCLIDoctorSaysWhatIsMissingWithoutGPUNodes(t *testing.T) {
	k := buildKiln(t)
	bare, err := framework.Start(context.Background(), "", 0) // API server and etcd, no nodes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bare.Stop() })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, bare.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := k.run(t, "--kubeconfig="+kubeconfig, "doctor")
	if err == nil {
		t.Fatalf("doctor should fail on a cluster without GPU nodes:\n%s", out)
	}
	for _, want := range []string{"✗ no schedulable node advertises nvidia.com/gpu (0 node(s) in all)", "fix: add GPU nodes and a device plugin",
		"! no ReadWriteMany storage class found", "error: 1 problem(s) block GPU training on this cluster"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
}

func mustTools(t *testing.T, names ...string) map[string]string {
	t.Helper()
	tools, err := framework.Tools(context.Background(), names...)
	if err != nil {
		t.Fatal(err)
	}
	return tools
}

// Every verb knows every kind, and a kind is never taken for a name: with a TrainingJob and a
// ModelServer both called "same", deleting the ModelServer leaves the TrainingJob.
func TestCLIKindsAreNeverMistaken(t *testing.T) {
	ctx := context.Background()
	k := buildKiln(t)
	c, ns := kilnClient(t), namespace(t)
	kubeconfig := planeKubeconfig(t)
	kiln := func(args ...string) (string, error) {
		return k.run(t, append([]string{"--kubeconfig=" + kubeconfig, "-n", ns}, args...)...)
	}
	tj := &v1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Name: "same", Namespace: ns},
		Spec: v1alpha1.TrainingJobSpec{Image: "registry.example/x:1", Command: []string{"true"}, Suspend: ptr.To(true)}}
	ms := &v1alpha1.ModelServer{ObjectMeta: metav1.ObjectMeta{Name: "same", Namespace: ns},
		Spec: v1alpha1.ModelServerSpec{Model: v1alpha1.ModelSource{URI: "pvc://models/same"},
			Runtime: v1alpha1.ServingRuntime{Image: "registry.example/serve:1", Port: ptr.To[int32](8080)}}}
	create(t, c, tj)
	create(t, c, ms)

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"get"}, []string{"trainingjob.kiln.dev/same", "modelserver.kiln.dev/same"}},
		{[]string{"get", "all"}, []string{"trainingjob.kiln.dev/same", "modelserver.kiln.dev/same"}},
		{[]string{"get", "same", "-o", "name"}, []string{"trainingjob.kiln.dev/same\nmodelserver.kiln.dev/same\n"}},
		{[]string{"get", "sweeps"}, nil},
		{[]string{"get", "modelservers", "-o", "jsonpath={.items[*].metadata.name}"}, []string{"same"}},
	} {
		out, err := kiln(tc.args...)
		if err != nil {
			t.Errorf("%v: %v\n%s", tc.args, err, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	if out, err := kiln("delete", "same"); err == nil || !strings.Contains(out, "several Kiln objects are called same") {
		t.Errorf("delete of an ambiguous name: %v\n%s", err, out)
	}
	if out, err := kiln("delete", "modelserver", "same"); err != nil || out != "modelserver.kiln.dev/same deleted\n" {
		t.Fatalf("delete modelserver same: %v\n%s", err, out)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(tj), &v1alpha1.TrainingJob{}); err != nil {
		t.Fatalf("the TrainingJob of the same name is gone after deleting the ModelServer: %v", err)
	}
	if out, err := kiln("delete", "same"); err != nil || out != "trainingjob.kiln.dev/same deleted\n" {
		t.Errorf("delete of the one object called same: %v\n%s", err, out)
	}
}

// The first case: 11 GPUs on 2 × 8 + 2 × 4 nodes. One rule for shapes means the
// user hears, before anything runs, which counts fit — and nothing about a topology never set.
func TestCLITrainOfAnUnevenCountNamesCountsThatFit(t *testing.T) {
	k := buildKiln(t)
	kubeconfig := planeKubeconfig(t)
	out, err := k.run(t, "--kubeconfig="+kubeconfig, "-n", namespace(t), "train", "eleven", "--gpus", "11", "--framework", "pytorch",
		"--image", "registry.example/resnet:1", "--checkpoints", "1Gi", "--dry-run=server", "--", "python", "train.py")
	if err != nil {
		t.Fatalf("train --dry-run=server: %v\n%s", err, out)
	}
	want := "11 GPUs cannot be split evenly over these nodes (sim-8x-nvidia-a100-sxm4-80gb: 2 × 8 GPUs, sim-4x-nvidia-l4: 2 × 4 GPUs) " +
		"with one worker pod per node; 10 (2 nodes) or 12 (2 nodes) can, or add nodes"
	if !strings.Contains(out, want) || strings.Contains(out, "topology") {
		t.Errorf("train of 11 GPUs: want a warning containing %q and no word of topology:\n%s", want, out)
	}
}
