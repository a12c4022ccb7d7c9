package validation

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
)

func notebook(mutate func(*v1alpha1.Notebook)) *v1alpha1.Notebook {
	nb := &v1alpha1.Notebook{ObjectMeta: metav1.ObjectMeta{Name: "nb", Namespace: "ns"}}
	if mutate != nil {
		mutate(nb)
	}
	return nb
}

func TestValidateNotebook(t *testing.T) {
	vol := func(name, uri, mount string) v1alpha1.NotebookVolume {
		return v1alpha1.NotebookVolume{Name: name, URI: uri, MountPath: mount}
	}
	tests := []struct {
		name   string
		mutate func(*v1alpha1.Notebook)
		want   []string // "type path" of each error
	}{
		{name: "only a name"},
		{name: "everything", mutate: func(nb *v1alpha1.Notebook) {
			nb.Spec = v1alpha1.NotebookSpec{
				Image: "jupyter:1", Port: 8888, Env: []corev1.EnvVar{{Name: "A", Value: "1"}},
				Resources:   v1alpha1.NotebookResources{GPUs: 1, CPU: ptr.To(resource.MustParse("2"))},
				Workspace:   v1alpha1.WorkspaceSpec{Size: ptr.To(resource.MustParse("5Gi")), RetentionPolicy: v1alpha1.RetentionDelete},
				Volumes:     []v1alpha1.NotebookVolume{vol("data", "pvc://datasets/imagenet", ""), vol("model", "trainingjob://resnet", "/models")},
				IdleTimeout: &metav1.Duration{Duration: time.Hour},
			}
		}},
		{name: "bad name", mutate: func(nb *v1alpha1.Notebook) { nb.Name = "1" + strings.Repeat("a", 52) },
			want: []string{"FieldValueInvalid metadata.name", "FieldValueTooLong metadata.name"}},
		{name: "negative idle timeout", mutate: func(nb *v1alpha1.Notebook) {
			nb.Spec.IdleTimeout = &metav1.Duration{Duration: -time.Minute}
		}, want: []string{"FieldValueInvalid spec.idleTimeout"}},
		{name: "unknown volume scheme", mutate: func(nb *v1alpha1.Notebook) {
			nb.Spec.Volumes = []v1alpha1.NotebookVolume{vol("a", "s3://bucket/x", "")}
		}, want: []string{"FieldValueNotSupported spec.volumes[0].uri"}},
		{name: "claim in another namespace", mutate: func(nb *v1alpha1.Notebook) {
			nb.Spec.Volumes = []v1alpha1.NotebookVolume{vol("a", "pvc://other.claim", "")}
		}, want: []string{"FieldValueInvalid spec.volumes[0].uri"}},
		{name: "training job with a path", mutate: func(nb *v1alpha1.Notebook) {
			nb.Spec.Volumes = []v1alpha1.NotebookVolume{vol("a", "trainingjob://resnet/epoch3", "")}
		}, want: []string{"FieldValueInvalid spec.volumes[0].uri"}},
		{name: "dot-dot in a claim path", mutate: func(nb *v1alpha1.Notebook) {
			nb.Spec.Volumes = []v1alpha1.NotebookVolume{vol("a", "pvc://c/../x", "")}
		}, want: []string{"FieldValueInvalid spec.volumes[0].uri"}},
		{name: "duplicate and clashing volumes", mutate: func(nb *v1alpha1.Notebook) {
			nb.Spec.Volumes = []v1alpha1.NotebookVolume{vol("a", "pvc://x", ""), vol("a", "pvc://y", "/data"), vol("b", "pvc://z", "/home/jovyan")}
		}, want: []string{"FieldValueDuplicate spec.volumes[1].name", "FieldValueInvalid spec.volumes[2].mountPath"}},
		{name: "reserved env", mutate: func(nb *v1alpha1.Notebook) {
			nb.Spec.Env = []corev1.EnvVar{{Name: "JUPYTER_TOKEN", Value: "x"}, {Name: "KILN_X", Value: "y"}}
		}, want: []string{"FieldValueForbidden spec.env[0].name", "FieldValueForbidden spec.env[1].name"}},
		{name: "bad resources and workspace", mutate: func(nb *v1alpha1.Notebook) {
			nb.Spec.Resources = v1alpha1.NotebookResources{GPUs: -1, Memory: ptr.To(resource.MustParse("0"))}
			nb.Spec.Workspace = v1alpha1.WorkspaceSpec{Size: ptr.To(resource.MustParse("0")), MountPath: "relative", AccessMode: "ReadMany"}
		}, want: []string{
			"FieldValueInvalid spec.resources.gpus", "FieldValueInvalid spec.resources.memory",
			"FieldValueInvalid spec.workspace.size", "FieldValueNotSupported spec.workspace.accessMode", "FieldValueInvalid spec.workspace.mountPath",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, typesAndPaths(ValidateNotebook(notebook(tc.mutate)))); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func typesAndPaths(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, string(e.Type)+" "+e.Field)
	}
	return out
}

func TestValidateNotebookUpdate(t *testing.T) {
	old := notebook(func(nb *v1alpha1.Notebook) { nb.Spec.Workspace.Size = ptr.To(resource.MustParse("10Gi")) })
	stopped := old.DeepCopy()
	stopped.Spec.Stopped = true
	if errs := ValidateNotebookUpdate(stopped, old); len(errs) > 0 {
		t.Errorf("stopping: %v", errs)
	}
	grown := old.DeepCopy()
	grown.Spec.Workspace.Size = ptr.To(resource.MustParse("20Gi"))
	if diff := cmp.Diff([]string{"FieldValueForbidden spec.workspace.size"}, typesAndPaths(ValidateNotebookUpdate(grown, old))); diff != "" {
		t.Errorf("growing the workspace (-want +got):\n%s", diff)
	}
}

func TestNotebookWarnings(t *testing.T) {
	node := func(gpus int64) corev1.Node {
		n := corev1.Node{Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")}}}
		if gpus > 0 {
			n.Status.Allocatable[v1alpha1.DefaultGPUResource] = *resource.NewQuantity(gpus, resource.DecimalSI)
		}
		return n
	}
	gpus := func(n int32, idle time.Duration) *v1alpha1.Notebook {
		return notebook(func(nb *v1alpha1.Notebook) {
			nb.Spec.Resources.GPUs = n
			nb.Spec.IdleTimeout = &metav1.Duration{Duration: idle}
		})
	}
	tests := []struct {
		name  string
		nb    *v1alpha1.Notebook
		nodes []corev1.Node
		want  []string // substrings, one per warning
	}{
		{name: "cpu notebook on cpu nodes", nb: notebook(nil), nodes: []corev1.Node{node(0)}},
		{name: "gpu notebook on gpu nodes", nb: gpus(1, time.Hour), nodes: []corev1.Node{node(0), node(4)}},
		{name: "no gpu nodes", nb: gpus(1, time.Hour), nodes: []corev1.Node{node(0)}, want: []string{"no node in the cluster has nvidia.com/gpu"}},
		{name: "no nodes at all", nb: gpus(2, time.Hour), want: []string{"until a node with 2 GPU(s) joins"}},
		{name: "too few per node", nb: gpus(8, time.Hour), nodes: []corev1.Node{node(4)}, want: []string{"the largest node has 4"}},
		{name: "gpus without idle timeout", nb: gpus(1, 0), nodes: []corev1.Node{node(8)}, want: []string{"spec.idleTimeout is unset"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := NotebookWarnings(tc.nb, tc.nodes)
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d containing %q", got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("warning %q, want it to contain %q", got[i], tc.want[i])
				}
			}
		})
	}
}
