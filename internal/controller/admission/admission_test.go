package admission

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
)

func TestPin(t *testing.T) {
	byName := func(n string) corev1.NodeSelectorRequirement {
		return corev1.NodeSelectorRequirement{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{n}}
	}
	pool := corev1.NodeSelectorRequirement{Key: "kiln.dev/pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"a100"}}
	kiln := corev1.PodSchedulingGate{Name: v1alpha1.PlacementGate}
	other := corev1.PodSchedulingGate{Name: "example.com/quota"}
	required := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
		}}
	}
	tests := []struct {
		name string
		spec corev1.PodSpec
		want corev1.PodSpec
	}{
		{
			name: "no affinity of its own",
			spec: corev1.PodSpec{SchedulingGates: []corev1.PodSchedulingGate{kiln}},
			want: corev1.PodSpec{Affinity: required(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{byName("n-1")}})},
		},
		{
			name: "every alternative of the user's is narrowed",
			spec: corev1.PodSpec{
				SchedulingGates: []corev1.PodSchedulingGate{kiln},
				Affinity: required(
					corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{pool}},
					corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{byName("n-1")}},
				),
			},
			want: corev1.PodSpec{Affinity: required(
				corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{pool}, MatchFields: []corev1.NodeSelectorRequirement{byName("n-1")}},
				corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{byName("n-1"), byName("n-1")}},
			)},
		},
		{
			name: "preferences and other gates stay",
			spec: corev1.PodSpec{
				SchedulingGates: []corev1.PodSchedulingGate{other, kiln},
				Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
					PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 1, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{pool}}}},
				}},
			},
			want: corev1.PodSpec{
				SchedulingGates: []corev1.PodSchedulingGate{other},
				Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution:  &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{byName("n-1")}}}},
					PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 1, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{pool}}}},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pin(&tt.spec, "n-1")
			if diff := cmp.Diff(tt.want, tt.spec); diff != "" {
				t.Errorf("pinned spec (-want +got):\n%s", diff)
			}
		})
	}
}

// A held gang counts through its hold, whether or not its pods exist; a pod
// of its Job away from the placement, or of an earlier Job of the same name,
// counts on its own.
func TestHeldGangCountsOnce(t *testing.T) {
	gpus := func(n int64) corev1.ResourceList {
		return corev1.ResourceList{v1alpha1.DefaultGPUResource: *resource.NewQuantity(n, resource.DecimalSI)}
	}
	node := func(name string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Allocatable: gpus(8)}}
	}
	spec := corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: gpus(4)}}}}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a-a0", UID: "uid-a"},
		Spec:       batchv1.JobSpec{Completions: ptr.To[int32](2), Template: corev1.PodTemplateSpec{Spec: spec}},
	}
	pod := func(name, uid, index, node string) corev1.Pod {
		p := corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: "ns", Name: name,
				Labels:      map[string]string{batchv1.JobNameLabel: "a-a0", batchv1.ControllerUidLabel: uid},
				Annotations: map[string]string{batchv1.JobCompletionIndexAnnotation: index},
			},
			Spec:   *spec.DeepCopy(),
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
		p.Spec.NodeName = node
		return p
	}
	w := &world{
		nodes: []corev1.Node{node("n-0"), node("n-1"), node("n-2")},
		pods: []corev1.Pod{
			pod("a-a0-0", "uid-a", "0", "n-0"),        // where the hold puts it; pod 1 not created yet
			pod("a-a0-1-old", "uid-a", "1", "n-2"),    // away from its placement
			pod("a-a0-0-prev", "uid-old", "0", "n-0"), // an earlier Job's, still stopping
		},
	}
	held := []*gang{{job: job, nodes: []string{"n-0", "n-1"}}}
	c, err := w.snapshot(v1alpha1.DefaultGPUResource, held).Cluster()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, n := range []string{"n-0", "n-1", "n-2"} {
		free, _ := c.Free(n)
		got[n] = free.GPU
	}
	if diff := cmp.Diff(map[string]int64{"n-0": 0, "n-1": 4, "n-2": 4}, got); diff != "" {
		t.Errorf("free GPUs (-want +got):\n%s", diff)
	}
}

func TestLostBecause(t *testing.T) {
	job := &batchv1.Job{Spec: batchv1.JobSpec{Completions: ptr.To[int32](2)}}
	present := map[string]bool{"n-0": true, "n-1": true}
	tests := []struct {
		nodes []string
		want  string
	}{
		{nodes: []string{"n-0", "n-1"}},
		{nodes: []string{"n-0", "n-9"}, want: "worker 1 lost its node n-9"},
		{nodes: []string{"n-0"}, want: "its placement names 1 nodes for 2 workers"},
	}
	for _, tt := range tests {
		if got := lostBecause(&gang{job: job, nodes: tt.nodes}, present); got != tt.want {
			t.Errorf("%v: got %q, want %q", tt.nodes, got, tt.want)
		}
	}
}

func TestPriorities(t *testing.T) {
	priority := priorities([]schedulingv1.PriorityClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000},
		{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Value: 10, GlobalDefault: true},
	})
	for name, want := range map[string]int32{"high": 1000, "": 10, "unknown": 0} {
		if got := priority(name); got != want {
			t.Errorf("priority(%q) = %d, want %d", name, got, want)
		}
	}
}
