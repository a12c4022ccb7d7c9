package webhook

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
)

func gpuNode(name string, res corev1.ResourceName, gpus int64) corev1.Node {
	alloc := corev1.ResourceList{res: *resource.NewQuantity(gpus, resource.DecimalSI)}
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Allocatable: alloc, Capacity: alloc}}
}

func nodes8x2() []corev1.Node {
	return []corev1.Node{gpuNode("a100-0", "nvidia.com/gpu", 8), gpuNode("a100-1", "nvidia.com/gpu", 8)}
}

func errSummary(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, string(e.Type)+" "+e.Field)
	}
	return out
}

func TestCheckTrainingJob(t *testing.T) {
	rwoClass := storagev1.StorageClass{
		ObjectMeta:  metav1.ObjectMeta{Name: "ebs", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner: "ebs.csi.aws.com",
	}
	nfs := storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "nfs"}, Provisioner: "nfs.csi.k8s.io"}
	cases := []struct {
		name     string
		spec     v1alpha1.TrainingJobSpec
		facts    trainingJobFacts
		errs     []string
		warnings []string // a distinctive substring of each warning, in order
	}{
		{
			name:  "8 GPUs on 8-GPU nodes",
			spec:  v1alpha1.TrainingJobSpec{Resources: v1alpha1.TrainingResources{GPUs: 8}},
			facts: trainingJobFacts{Nodes: nodes8x2()},
		},
		{
			name:     "16 GPUs without checkpoints",
			spec:     v1alpha1.TrainingJobSpec{Resources: v1alpha1.TrainingResources{GPUs: 16}},
			facts:    trainingJobFacts{Nodes: nodes8x2()},
			warnings: []string{"runs on 2 nodes without checkpoints"},
		},
		{
			name: "several nodes where one would do",
			spec: v1alpha1.TrainingJobSpec{
				Resources:   v1alpha1.TrainingResources{GPUs: 8},
				Topology:    &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 4},
				Checkpoints: &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi"), StorageClassName: ptr.To("nfs")},
			},
			facts:    trainingJobFacts{Nodes: nodes8x2(), StorageClasses: []storagev1.StorageClass{rwoClass, nfs}},
			warnings: []string{"asks for 2 nodes × 4 GPUs, but 1 node(s) × 8 GPUs would hold the job"},
		},
		{
			name:     "no node advertises the GPU resource",
			spec:     v1alpha1.TrainingJobSpec{Resources: v1alpha1.TrainingResources{GPUs: 4}},
			facts:    trainingJobFacts{Nodes: []corev1.Node{gpuNode("mi300-0", "amd.com/gpu", 8)}},
			warnings: []string{"no schedulable node advertises nvidia.com/gpu (nodes advertise amd.com/gpu)"},
		},
		{
			name: "worker larger than every node",
			spec: v1alpha1.TrainingJobSpec{
				Resources: v1alpha1.TrainingResources{GPUs: 16},
				Topology:  &v1alpha1.Topology{Nodes: 1, ProcessesPerNode: 16},
			},
			facts: trainingJobFacts{Nodes: nodes8x2()},
			errs:  []string{"FieldValueInvalid spec.topology.processesPerNode"},
		},
		{
			// One worker pod per node: 11 × 1 needs 11 nodes; the warning names counts that fit.
			name:     "a count that does not split evenly over the nodes present waits, naming counts that fit",
			spec:     v1alpha1.TrainingJobSpec{Resources: v1alpha1.TrainingResources{GPUs: 11}, Checkpoints: &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}},
			facts:    trainingJobFacts{Nodes: nodes8x2()},
			warnings: []string{"does not fit the nodes present now: 11 GPUs cannot be split evenly over these nodes (unpooled: 2 × 8 GPUs) with one worker pod per node; 10 (2 nodes) or 12 (2 nodes) can, or add nodes"},
		},
		{
			name: "a count spread wider than the GPUs need",
			spec: v1alpha1.TrainingJobSpec{Resources: v1alpha1.TrainingResources{GPUs: 11}, Checkpoints: &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}},
			facts: trainingJobFacts{Nodes: []corev1.Node{gpuNode("a", "nvidia.com/gpu", 8), gpuNode("b", "nvidia.com/gpu", 8),
				gpuNode("c", "nvidia.com/gpu", 1), gpuNode("d", "nvidia.com/gpu", 1), gpuNode("e", "nvidia.com/gpu", 1), gpuNode("f", "nvidia.com/gpu", 1),
				gpuNode("g", "nvidia.com/gpu", 1), gpuNode("h", "nvidia.com/gpu", 1), gpuNode("i", "nvidia.com/gpu", 1), gpuNode("j", "nvidia.com/gpu", 1),
				gpuNode("k", "nvidia.com/gpu", 1)}},
			warnings: []string{"so the job runs as 11x1: 11 worker pods on as many nodes, with more traffic between them and a larger gang to schedule. Fix: ask for 10 GPUs (2 nodes) or 12 GPUs (2 nodes)"},
		},
		{
			name:     "more GPUs than the nodes present waits",
			spec:     v1alpha1.TrainingJobSpec{Resources: v1alpha1.TrainingResources{GPUs: 32}, Checkpoints: &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}},
			facts:    trainingJobFacts{Nodes: nodes8x2()},
			warnings: []string{"does not fit the nodes present now"},
		},
		{
			name: "shared checkpoints on a ReadWriteOnce volume",
			spec: v1alpha1.TrainingJobSpec{
				Resources:   v1alpha1.TrainingResources{GPUs: 16},
				Checkpoints: &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi"), AccessMode: corev1.ReadWriteOnce, StorageClassName: ptr.To("nfs")},
			},
			facts: trainingJobFacts{Nodes: nodes8x2(), StorageClasses: []storagev1.StorageClass{nfs}},
			errs:  []string{"FieldValueInvalid spec.checkpoints.accessMode"},
		},
		{
			name: "checkpoints on a ReadWriteOnce class",
			spec: v1alpha1.TrainingJobSpec{
				Resources:   v1alpha1.TrainingResources{GPUs: 16},
				Checkpoints: &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")},
			},
			facts:    trainingJobFacts{Nodes: nodes8x2(), StorageClasses: []storagev1.StorageClass{rwoClass}},
			warnings: []string{"StorageClass ebs (provisioner ebs.csi.aws.com), which makes ReadWriteOnce volumes only"},
		},
		{
			name: "a class annotated ReadWriteMany is trusted",
			spec: v1alpha1.TrainingJobSpec{Checkpoints: &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}},
			facts: trainingJobFacts{StorageClasses: []storagev1.StorageClass{{
				ObjectMeta:  metav1.ObjectMeta{Name: "x", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true", AnnotationAccessModes: "ReadWriteOnce, ReadWriteMany"}},
				Provisioner: "ebs.csi.aws.com",
			}}},
		},
		{
			// Admission is not an oracle: it answers the same whether the Secret and
			// claims a job names exist or not (the controller reports missing ones).
			name: "referenced Secrets and claims are not looked up",
			spec: v1alpha1.TrainingJobSpec{Data: []v1alpha1.DataInput{
				{Name: "corpus", URI: "s3://bucket/corpus", SecretRef: &v1alpha1.LocalSecretReference{Name: "s3"}},
				{Name: "shards", URI: "pvc://shards/train"},
				{Name: "there", URI: "pvc://there"},
			}},
			facts: trainingJobFacts{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tj := &v1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Name: "train", Namespace: "team-a"}, Spec: tc.spec}
			errs, warnings := checkTrainingJob(tj, tc.facts)
			if d := cmp.Diff(tc.errs, errSummary(errs)); d != "" {
				t.Errorf("errors (-want +got):\n%s\n%v", d, errs)
			}
			if len(warnings) != len(tc.warnings) {
				t.Fatalf("warnings = %q, want %d", warnings, len(tc.warnings))
			}
			for i, w := range tc.warnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warnings[i], w)
				}
				if !strings.Contains(warnings[i], "Fix:") && !strings.Contains(warnings[i], "It waits") {
					t.Errorf("warning %d says no fix: %q", i, warnings[i])
				}
			}
		})
	}
}

func TestChooseGPUResource(t *testing.T) {
	cases := []struct {
		name  string
		nodes []corev1.Node
		want  corev1.ResourceName
		why   bool
	}{
		{"no nodes", nil, "nvidia.com/gpu", false},
		{"NVIDIA", nodes8x2(), "nvidia.com/gpu", false},
		{"AMD only", []corev1.Node{gpuNode("m", "amd.com/gpu", 8)}, "amd.com/gpu", true},
		{"both prefer NVIDIA", []corev1.Node{gpuNode("m", "amd.com/gpu", 8), gpuNode("n", "nvidia.com/gpu", 8)}, "nvidia.com/gpu", false},
		{"Intel", []corev1.Node{gpuNode("i", "gpu.intel.com/xe", 4)}, "gpu.intel.com/xe", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why := chooseGPUResource(tc.nodes)
			if got != tc.want || (why != "") != tc.why {
				t.Errorf("chooseGPUResource = %s, %q; want %s (explained: %v)", got, why, tc.want, tc.why)
			}
		})
	}
}
