package placement

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/api/v1alpha1"
)

const gpu = "nvidia.com/gpu"

func TestChoose(t *testing.T) {
	p4d := NodeShape{Pool: "p4d", GPUsPerNode: 8, Count: 4}
	g5 := NodeShape{Pool: "g5", GPUsPerNode: 4, Count: 4}
	cases := []struct {
		name    string
		gpus    int32
		shapes  []NodeShape
		want    Shape
		wantErr string
	}{
		{
			name: "cpu job",
			gpus: 0,
			want: Shape{Nodes: 1, ProcessesPerNode: 1, Reason: "CPU job: one node, one process"},
		},
		{
			name:   "8 on 8-GPU nodes is one node, never two",
			gpus:   8,
			shapes: []NodeShape{p4d},
			want:   Shape{Nodes: 1, ProcessesPerNode: 8, GPUsPerNode: 8, Pool: "p4d", Reason: "8 GPUs fit on one node of pool p4d (8 × nvidia.com/gpu)"},
		},
		{
			name:   "8 on 4-GPU nodes is 2x4",
			gpus:   8,
			shapes: []NodeShape{g5},
			want: Shape{Nodes: 2, ProcessesPerNode: 4, GPUsPerNode: 4, Pool: "g5",
				Reason: "8 GPUs do not fit on one node (the largest has 4 × nvidia.com/gpu); the fewest nodes that split them evenly are 2 nodes × 4 GPUs of pool g5"},
		},
		{
			name:   "4 prefers the tightest pool",
			gpus:   4,
			shapes: []NodeShape{p4d, g5},
			want:   Shape{Nodes: 1, ProcessesPerNode: 4, GPUsPerNode: 4, Pool: "g5", Reason: "4 GPUs fit on one node of pool g5 (4 × nvidia.com/gpu)"},
		},
		{
			name:   "2 on an 8-GPU node",
			gpus:   2,
			shapes: []NodeShape{p4d},
			want:   Shape{Nodes: 1, ProcessesPerNode: 2, GPUsPerNode: 2, Pool: "p4d", Reason: "2 GPUs fit on one node of pool p4d (8 × nvidia.com/gpu)"},
		},
		{
			name:   "12 on 8-GPU nodes splits evenly as 2x6",
			gpus:   12,
			shapes: []NodeShape{p4d},
			want: Shape{Nodes: 2, ProcessesPerNode: 6, GPUsPerNode: 6, Pool: "p4d",
				Reason: "12 GPUs do not fit on one node (the largest has 8 × nvidia.com/gpu); the fewest nodes that split them evenly are 2 nodes × 6 GPUs of pool p4d"},
		},
		{
			name:   "32 on four 8-GPU nodes",
			gpus:   32,
			shapes: []NodeShape{p4d},
			want: Shape{Nodes: 4, ProcessesPerNode: 8, GPUsPerNode: 8, Pool: "p4d",
				Reason: "32 GPUs do not fit on one node (the largest has 8 × nvidia.com/gpu); the fewest nodes that split them evenly are 4 nodes × 8 GPUs of pool p4d"},
		},
		{
			name:   "16 spans pools when no pool alone holds it",
			gpus:   16,
			shapes: []NodeShape{{Pool: "a", GPUsPerNode: 8, Count: 1}, {Pool: "b", GPUsPerNode: 8, Count: 1}},
			want: Shape{Nodes: 2, ProcessesPerNode: 8, GPUsPerNode: 8,
				Reason: "16 GPUs do not fit on one node (the largest has 8 × nvidia.com/gpu); the fewest nodes that split them evenly are 2 nodes × 8 GPUs"},
		},
		{
			name:   "16 with one big node falls back to smaller shares",
			gpus:   16,
			shapes: []NodeShape{{Pool: "big", GPUsPerNode: 8, Count: 1}, {Pool: "small", GPUsPerNode: 4, Count: 3}},
			want: Shape{Nodes: 4, ProcessesPerNode: 4, GPUsPerNode: 4,
				Reason: "16 GPUs do not fit on one node (the largest has 8 × nvidia.com/gpu); the fewest nodes that split them evenly are 4 nodes × 4 GPUs"},
		},
		{
			name:    "no GPU nodes",
			gpus:    8,
			wantErr: "no schedulable node offers nvidia.com/gpu",
		},
		{
			name:    "more GPUs than the cluster has",
			gpus:    16,
			shapes:  []NodeShape{{Pool: "p4d", GPUsPerNode: 8, Count: 1}},
			wantErr: "needs 16 × nvidia.com/gpu but the schedulable nodes have 8 in all (p4d: 1 × 8 GPUs)",
		},
		{
			// Gang admission gives every GPU rank a node of its own, so 11 × 1 GPU needs
			// 11 nodes: Choose refuses it on two and names the counts that work.
			name:    "a prime count that would need a node per GPU is refused with the counts that work",
			gpus:    11,
			shapes:  []NodeShape{{Pool: "p4d", GPUsPerNode: 8, Count: 2}},
			wantErr: "11 GPUs cannot be split evenly over these nodes (p4d: 2 × 8 GPUs) with one worker pod per node; 10 (2 nodes) or 12 (2 nodes) can, or add nodes",
		},
		{
			name:    "12 on one 8-GPU and one 4-GPU node",
			gpus:    12,
			shapes:  []NodeShape{{Pool: "p4d", GPUsPerNode: 8, Count: 1}, {Pool: "g5", GPUsPerNode: 4, Count: 1}},
			wantErr: "12 GPUs cannot be split evenly over these nodes (p4d: 1 × 8 GPUs, g5: 1 × 4 GPUs) with one worker pod per node; 8 (1 node) can, or add nodes",
		},
		{
			name:   "a prime count on enough 1-GPU nodes is one GPU per node",
			gpus:   11,
			shapes: []NodeShape{{Pool: "t4", GPUsPerNode: 1, Count: 12}},
			want: Shape{Nodes: 11, ProcessesPerNode: 1, GPUsPerNode: 1, Pool: "t4",
				Reason: "11 GPUs do not fit on one node (the largest has 1 × nvidia.com/gpu); the fewest nodes that split them evenly are 11 nodes × 1 GPU of pool t4"},
		},
		{
			name:    "negative",
			gpus:    -1,
			wantErr: "must be 0",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Choose(tc.gpus, gpu, tc.shapes)
			checkErr(t, err, tc.wantErr)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("shape (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromTopology(t *testing.T) {
	p4d := []NodeShape{{Pool: "p4d", GPUsPerNode: 8, Count: 2}}
	cases := []struct {
		name    string
		topo    v1alpha1.Topology
		gpus    int32
		shapes  []NodeShape
		want    Shape
		wantErr string
	}{
		{
			name:   "used as is even when Kiln would choose 1x8",
			topo:   v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 4},
			gpus:   8,
			shapes: p4d,
			want:   Shape{Nodes: 2, ProcessesPerNode: 4, GPUsPerNode: 4, Pool: "p4d", Reason: "set by spec.topology: 2 × 4"},
		},
		{
			name: "cpu processes",
			topo: v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 3},
			want: Shape{Nodes: 2, ProcessesPerNode: 3, Reason: "set by spec.topology: 2 × 3 CPU processes"},
		},
		{
			name: "no nodes known (offline)",
			topo: v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 8},
			gpus: 16,
			want: Shape{Nodes: 2, ProcessesPerNode: 8, GPUsPerNode: 8, Reason: "set by spec.topology: 2 × 8"},
		},
		{
			name:    "product mismatch",
			topo:    v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 2},
			gpus:    8,
			wantErr: "topology 2 × 2 makes 4 processes but resources.gpus is 8",
		},
		{
			name:    "too many per node",
			topo:    v1alpha1.Topology{Nodes: 1, ProcessesPerNode: 16},
			gpus:    16,
			shapes:  p4d,
			wantErr: "topology asks for 16 × nvidia.com/gpu per node but the largest node has 8",
		},
		{
			name:    "too many nodes",
			topo:    v1alpha1.Topology{Nodes: 4, ProcessesPerNode: 8},
			gpus:    32,
			shapes:  p4d,
			wantErr: "topology asks for 4 pods with 8 × nvidia.com/gpu each but the nodes present hold only 2",
		},
		{
			name:    "zero nodes",
			topo:    v1alpha1.Topology{Nodes: 0, ProcessesPerNode: 8},
			gpus:    8,
			wantErr: "must be at least 1",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromTopology(tc.topo, tc.gpus, gpu, tc.shapes)
			checkErr(t, err, tc.wantErr)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("shape (-want +got):\n%s", diff)
			}
		})
	}
}

func TestForTrainingJob(t *testing.T) {
	shapes := []NodeShape{{Pool: "g5", GPUsPerNode: 4, Count: 2}}
	spec := &v1alpha1.TrainingJobSpec{Resources: v1alpha1.TrainingResources{GPUs: 8}}
	got, err := ForTrainingJob(spec, shapes)
	if err != nil {
		t.Fatal(err)
	}
	if got.Summary() != "2x4" {
		t.Errorf("got %s, want 2x4", got.Summary())
	}
	spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 4}
	got, err = ForTrainingJob(spec, shapes)
	if err != nil {
		t.Fatal(err)
	}
	if got.Summary() != "2x4" || !strings.HasPrefix(got.Reason, "set by spec.topology") {
		t.Errorf("got %s (%s), want 2x4 from the topology", got.Summary(), got.Reason)
	}
	// One worker pod per node: 8 × 1 needs 8 nodes, as gang admission would.
	spec.Topology = &v1alpha1.Topology{Nodes: 8, ProcessesPerNode: 1}
	if _, err = ForTrainingJob(spec, shapes); err == nil || !strings.Contains(err.Error(), "the nodes present hold only 2") {
		t.Errorf("topology 8x1 on two nodes: %v, want a refusal", err)
	}
}

func TestNodeShapesFromNodes(t *testing.T) {
	node := func(name string, gpus int64, labels map[string]string, unschedulable bool) corev1.Node {
		n := corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.NodeSpec{Unschedulable: unschedulable},
		}
		if gpus >= 0 {
			n.Status.Allocatable = corev1.ResourceList{gpu: *resource.NewQuantity(gpus, resource.DecimalSI)}
		}
		return n
	}
	p4d := map[string]string{"node.kubernetes.io/instance-type": "p4d.24xlarge"}
	pool := map[string]string{"cloud.google.com/gke-nodepool": "a100", "node.kubernetes.io/instance-type": "a2-highgpu-8g"}
	nodes := []corev1.Node{
		node("a", 8, p4d, false),
		node("b", 8, p4d, false),
		node("c", 8, p4d, true),  // cordoned
		node("d", 6, p4d, false), // two GPUs taken by the device plugin's health check
		node("e", 8, pool, false),
		node("f", 4, nil, false),
		node("g", 0, nil, false),  // GPU resource advertised but none allocatable
		node("h", -1, nil, false), // CPU node
	}
	want := []NodeShape{
		{Pool: "a100", GPUsPerNode: 8, Count: 1},
		{Pool: "p4d.24xlarge", GPUsPerNode: 8, Count: 2},
		{Pool: "p4d.24xlarge", GPUsPerNode: 6, Count: 1},
		{Pool: "", GPUsPerNode: 4, Count: 1},
	}
	if diff := cmp.Diff(want, NodeShapesFromNodes(nodes, gpu)); diff != "" {
		t.Errorf("shapes (-want +got):\n%s", diff)
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q, want it to contain %q", err, want)
	}
}

func TestWiderThanNeeded(t *testing.T) {
	p4d := []NodeShape{{Pool: "p4d", GPUsPerNode: 8, Count: 16}}
	for _, tc := range []struct {
		gpus int32
		want string
	}{
		{8, ""},
		{12, ""},
		{11, "11 GPUs do not split evenly over 2 of these nodes (one worker pod per node, the same GPUs in each), so the job runs as 11x1: " +
			"11 worker pods on as many nodes, with more traffic between them and a larger gang to schedule. Fix: ask for 10 GPUs (2 nodes) or 12 GPUs (2 nodes), which use fewer nodes"},
	} {
		s, err := Choose(tc.gpus, gpu, p4d)
		if err != nil {
			t.Fatal(err)
		}
		if got := WiderThanNeeded(tc.gpus, s, p4d); got != tc.want {
			t.Errorf("WiderThanNeeded(%d, %s) = %q, want %q", tc.gpus, s.Summary(), got, tc.want)
		}
	}
}
