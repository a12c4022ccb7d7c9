package validation

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
)

func valid() *v1alpha1.TrainingJob {
	return &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{Name: "train", Namespace: "ns"},
		Spec: v1alpha1.TrainingJobSpec{
			Image:     "trainer:1",
			Command:   []string{"torchrun", "train.py"},
			Framework: v1alpha1.FrameworkPyTorch,
			Resources: v1alpha1.TrainingResources{GPUs: 8, GPUResource: v1alpha1.DefaultGPUResource, Memory: ptr.To(resource.MustParse("16Gi"))},
			Data: []v1alpha1.DataInput{
				{Name: "corpus", URI: "s3://datasets/corpus", SecretRef: &v1alpha1.LocalSecretReference{Name: "s3"}},
				{Name: "shards", URI: "pvc://shards/v2/train"},
			},
			Checkpoints: &v1alpha1.VolumeSpec{Size: resource.MustParse("100Gi")},
		},
	}
}

// summary reduces errors to "type path" for comparison; details are for people.
func summary(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, string(e.Type)+" "+e.Field)
	}
	return out
}

func TestValidateTrainingJob(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*v1alpha1.TrainingJob)
		want   []string
		detail string // a substring of the first error's text
	}{
		{name: "valid", mutate: func(*v1alpha1.TrainingJob) {}},
		{
			name:   "cpu job with framework none",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Framework = v1alpha1.FrameworkNone; tj.Spec.Resources.GPUs = 0 },
		},
		{
			name:   "never defaulted framework is none",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Framework = ""; tj.Spec.Resources.GPUs = 0 },
		},
		{
			name: "cpu pytorch with a topology",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Resources.GPUs = 0
				tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 4}
			},
		},
		{
			name:   "name starting with a digit",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Name = "1train" },
			want:   []string{"FieldValueInvalid metadata.name"},
		},
		{
			name:   "no image",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Image = "" },
			want:   []string{"FieldValueRequired spec.image"},
		},
		{
			name:   "unknown framework",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Framework = "tensorflow" },
			want:   []string{"FieldValueNotSupported spec.framework"},
			detail: `"tensorflow": supported values: "none", "pytorch", "mpi", "jax"`,
		},
		{
			name:   "negative gpus",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Resources.GPUs = -1 },
			want:   []string{"FieldValueInvalid spec.resources.gpus"},
		},
		{
			name:   "zero gpus for pytorch",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Resources.GPUs = 0 },
			want:   []string{"FieldValueInvalid spec.resources.gpus"},
			detail: "framework pytorch needs GPUs",
		},
		{
			name:   "topology that does not multiply to gpus",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 2} },
			want:   []string{"FieldValueInvalid spec.topology"},
			detail: "makes 4 processes but resources.gpus is 8",
		},
		{
			name:   "topology with zero nodes",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Topology = &v1alpha1.Topology{Nodes: 0, ProcessesPerNode: 8} },
			want:   []string{"FieldValueInvalid spec.topology.nodes", "FieldValueInvalid spec.topology"},
		},
		{
			name:   "mpi without a command",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Framework = v1alpha1.FrameworkMPI; tj.Spec.Command = nil },
			want:   []string{"FieldValueRequired spec.command"},
		},
		{
			name:   "bad gpu resource",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Resources.GPUResource = "nvidia.com/g/pu" },
			want:   []string{"FieldValueInvalid spec.resources.gpuResource"},
		},
		{
			name:   "zero memory",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Resources.Memory = ptr.To(resource.MustParse("0")) },
			want:   []string{"FieldValueInvalid spec.resources.memory"},
		},
		{
			name: "reserved and duplicate env",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Env = []corev1.EnvVar{{Name: "KILN_OUTPUT_DIR"}, {Name: "PET_NNODES"}, {Name: "A"}, {Name: "A"}, {Name: "1A"}}
			},
			want: []string{
				"FieldValueForbidden spec.env[0].name",
				"FieldValueForbidden spec.env[1].name",
				"FieldValueDuplicate spec.env[3].name",
				"FieldValueInvalid spec.env[4].name",
			},
		},
		{
			name: "env set by a network field",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Network = &v1alpha1.Network{NCCL: &v1alpha1.NCCL{Debug: "INFO"}}
				tj.Spec.Env = []corev1.EnvVar{{Name: "NCCL_DEBUG", Value: "WARN"}}
			},
			want:   []string{"FieldValueForbidden spec.env[0].name"},
			detail: "NCCL_DEBUG is set by Kiln from network.nccl.debug",
		},
		{
			name: "env set by the jax framework",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Framework = v1alpha1.FrameworkJAX
				tj.Spec.Env = []corev1.EnvVar{{Name: "JAX_PROCESS_ID", Value: "0"}}
			},
			want: []string{"FieldValueForbidden spec.env[0].name"},
		},
		{
			name: "pvc in another namespace",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Data = []v1alpha1.DataInput{{Name: "a", URI: "pvc://shards.other-team/x"}, {Name: "b", URI: "pvc://other-team:shards"}}
			},
			want:   []string{"FieldValueInvalid spec.data[0].uri", "FieldValueInvalid spec.data[1].uri"},
			detail: "claims in other namespaces cannot be used",
		},
		{
			name:   "pvc without a claim",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Data = []v1alpha1.DataInput{{Name: "a", URI: "pvc:///x"}} },
			want:   []string{"FieldValueInvalid spec.data[0].uri"},
		},
		{
			name:   "pvc with an unclean path",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Data = []v1alpha1.DataInput{{Name: "a", URI: "pvc://c/x//y"}} },
			want:   []string{"FieldValueInvalid spec.data[0].uri"},
		},
		{
			name: "dot-dot",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Data = []v1alpha1.DataInput{{Name: "a", URI: "s3://bucket/a/../b"}}
			},
			want: []string{"FieldValueInvalid spec.data[0].uri"},
		},
		{
			name: "secret on a pvc input",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Data[1].SecretRef = &v1alpha1.LocalSecretReference{Name: "s"}
			},
			want: []string{"FieldValueForbidden spec.data[1].secretRef"},
		},
		{
			name: "bad uris",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Data = []v1alpha1.DataInput{
					{Name: "a", URI: "ftp://host/x"},
					{Name: "b", URI: "s3://B/x"},
					{Name: "c", URI: "https://user:pw@example.com/x"},
					{Name: "d", URI: "https:///x"},
					{Name: "e", URI: "datasets/x"},
				}
			},
			want: []string{
				"FieldValueNotSupported spec.data[0].uri",
				"FieldValueInvalid spec.data[1].uri",
				"FieldValueForbidden spec.data[2].uri",
				"FieldValueInvalid spec.data[3].uri",
				"FieldValueInvalid spec.data[4].uri",
			},
		},
		{
			name: "duplicate and invalid data names",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Data = append(tj.Spec.Data, v1alpha1.DataInput{Name: "corpus", URI: "gs://bkt/c"}, v1alpha1.DataInput{Name: "Big", URI: "gs://bkt/c"})
			},
			want: []string{"FieldValueDuplicate spec.data[2].name", "FieldValueInvalid spec.data[3].name"},
		},
		{
			name:   "zero-size checkpoints",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Checkpoints.Size = resource.MustParse("0") },
			want:   []string{"FieldValueInvalid spec.checkpoints.size"},
		},
		{
			name: "ReadWriteOnce output on two nodes",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 4}
				tj.Spec.Output = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi"), AccessMode: corev1.ReadWriteOnce}
			},
			want: []string{"FieldValueInvalid spec.output.accessMode"},
		},
		{
			name:   "negative shared memory",
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.SharedMemory = ptr.To(resource.MustParse("-1Gi")) },
			want:   []string{"FieldValueInvalid spec.sharedMemory"},
		},
		{
			name: "network",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Network = &v1alpha1.Network{
					RDMA: corev1.ResourceList{"rdma/ib": resource.MustParse("0")},
					NCCL: &v1alpha1.NCCL{Debug: "LOUD", Env: map[string]string{"FOO": "1"}},
				}
			},
			want: []string{
				"FieldValueInvalid spec.network.rdma[rdma/ib]",
				"FieldValueNotSupported spec.network.nccl.debug",
				"FieldValueInvalid spec.network.nccl.env[FOO]",
			},
		},
		{
			name: "scalars",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.Restart.MaxRestarts = ptr.To[int32](-1)
				tj.Spec.QueueName = "Team_A"
				tj.Spec.PriorityClassName = "High!"
				tj.Spec.TTLSecondsAfterFinished = ptr.To[int32](-5)
				tj.Spec.ActiveDeadlineSeconds = ptr.To[int64](0)
			},
			want: []string{
				"FieldValueInvalid spec.restart.maxRestarts",
				"FieldValueInvalid spec.queueName",
				"FieldValueInvalid spec.priorityClassName",
				"FieldValueInvalid spec.ttlSecondsAfterFinished",
				"FieldValueInvalid spec.activeDeadlineSeconds",
			},
		},
		{
			name: "overlay",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{
					Labels:  map[string]string{v1alpha1.LabelAttempt: "9"},
					Volumes: []corev1.Volume{{Name: "kiln-shm"}, {Name: "scratch"}, {Name: "scratch"}},
					VolumeMounts: []corev1.VolumeMount{
						{Name: "scratch", MountPath: "/kiln/output"},
						{Name: "missing", MountPath: "relative"},
					},
					Env:                []corev1.EnvVar{{Name: "KILN_NODES"}},
					ServiceAccountName: "Bad Name",
				}
			},
			want: []string{
				"FieldValueForbidden spec.podTemplate.labels[kiln.dev/attempt]",
				"FieldValueInvalid spec.podTemplate.serviceAccountName",
				"FieldValueForbidden spec.podTemplate.volumes[0].name",
				"FieldValueDuplicate spec.podTemplate.volumes[2].name",
				"FieldValueForbidden spec.podTemplate.volumeMounts[0].mountPath",
				"FieldValueNotFound spec.podTemplate.volumeMounts[1].name",
				"FieldValueInvalid spec.podTemplate.volumeMounts[1].mountPath",
				"FieldValueForbidden spec.podTemplate.env[0].name",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tj := valid()
			tc.mutate(tj)
			errs := ValidateTrainingJob(tj)
			if diff := cmp.Diff(tc.want, summary(errs)); diff != "" {
				t.Fatalf("errors (-want +got):\n%s\n%v", diff, errs)
			}
			if tc.detail != "" && !strings.Contains(errs[0].Error(), tc.detail) {
				t.Errorf("error %q, want it to contain %q", errs[0].Error(), tc.detail)
			}
		})
	}
}

func TestValidateTrainingJobUpdate(t *testing.T) {
	cases := []struct {
		name   string
		old    func(*v1alpha1.TrainingJob)
		mutate func(*v1alpha1.TrainingJob)
		want   []string
	}{
		{name: "suspend and deadline may change", mutate: func(tj *v1alpha1.TrainingJob) {
			tj.Spec.Suspend = ptr.To(true)
			tj.Spec.ActiveDeadlineSeconds = ptr.To[int64](60)
		}},
		{
			name:   "defaulting the framework is no change",
			old:    func(tj *v1alpha1.TrainingJob) { tj.Spec.Framework = ""; tj.Spec.Resources.GPUs = 0 },
			mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Framework = v1alpha1.FrameworkNone; tj.Spec.Resources.GPUs = 0 },
		},
		{name: "image", mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Image = "trainer:2" }, want: []string{"FieldValueInvalid spec.image"}},
		{name: "framework", mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Framework = v1alpha1.FrameworkJAX }, want: []string{"FieldValueInvalid spec.framework"}},
		{name: "gpus", mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Resources.GPUs = 16 }, want: []string{"FieldValueInvalid spec.resources"}},
		{name: "topology added", mutate: func(tj *v1alpha1.TrainingJob) {
			tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 4}
		}, want: []string{"FieldValueInvalid spec.topology"}},
		{name: "data", mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Data = tj.Spec.Data[:1] }, want: []string{"FieldValueInvalid spec.data"}},
		{name: "checkpoints removed", mutate: func(tj *v1alpha1.TrainingJob) { tj.Spec.Checkpoints = nil }, want: []string{"FieldValueInvalid spec.checkpoints"}},
		{name: "output added", mutate: func(tj *v1alpha1.TrainingJob) {
			tj.Spec.Output = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}
		}, want: []string{"FieldValueInvalid spec.output"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := valid()
			if tc.old != nil {
				tc.old(old)
			}
			updated := valid()
			tc.mutate(updated)
			if diff := cmp.Diff(tc.want, summary(ValidateTrainingJobUpdate(updated, old))); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}
