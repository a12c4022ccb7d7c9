package placement

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func list(cpu, mem string, gpus int64) corev1.ResourceList {
	l := corev1.ResourceList{gpu: *resource.NewQuantity(gpus, resource.DecimalSI)}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		l[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return l
}

func corePod(name, node string, phase corev1.PodPhase, gang string, gpus int64) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"gang": gang}},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: list("8", "64Gi", gpus)}}},
		},
		Status: corev1.PodStatus{Phase: phase},
	}
}

// TestSnapshotAfterRestart rebuilds the capacity picture a restarted manager
// sees: a gang admitted before the restart with one pod running and one not
// yet created, pods of other workloads, and pods that no longer hold anything.
func TestSnapshotAfterRestart(t *testing.T) {
	node := func(name string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Allocatable: list("96", "768Gi", 8)}}
	}
	member := PodFromSpec(&corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: list("8", "64Gi", 4)}}}}, gpu)
	s := Snapshot{
		Nodes: []corev1.Node{node("n2"), node("n1")},
		Pods: []corev1.Pod{
			corePod("train-0", "n1", corev1.PodRunning, "ns/train", 4), // the held gang's pod 0; pod 1 is not created yet
			corePod("other", "n1", corev1.PodRunning, "", 2),
			corePod("done", "n2", corev1.PodSucceeded, "", 8),
			corePod("pending", "", corev1.PodPending, "", 8),
		},
		Held:        []Held{{Gang: "ns/train", Pods: []Pod{member, member}, Nodes: []string{"n1", "n2"}}},
		GangOf:      func(p *corev1.Pod) string { return p.Labels["gang"] },
		GPUResource: gpu,
	}
	c, err := s.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, n := range []string{"n1", "n2"} {
		free, _ := c.Free(n)
		got[n] = free.GPU
	}
	if diff := cmp.Diff(map[string]int64{"n1": 2, "n2": 4}, got); diff != "" {
		t.Errorf("free GPUs (-want +got):\n%s", diff)
	}

	// The held gang comes round again: it keeps its nodes, nothing is booked
	// twice, and a newcomer gets what is really free.
	queue := []Gang{
		{ID: "ns/train", Pods: []Pod{member, member}},
		{ID: "ns/next", Arrival: epoch, Pods: []Pod{member}},
	}
	want := []Decision{
		{Gang: "ns/train", State: Admitted, Nodes: []string{"n1", "n2"}},
		{Gang: "ns/next", State: Admitted, Nodes: []string{"n2"}},
	}
	if diff := cmp.Diff(want, Admit(c, queue, nil)); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}

	c.Release("ns/train")
	if free, _ := c.Free("n1"); free.GPU != 6 {
		t.Errorf("after release n1 has %d free GPUs, want 6", free.GPU)
	}
}

func TestSnapshotReportsGoneNodes(t *testing.T) {
	s := Snapshot{
		Pods: []corev1.Pod{corePod("p", "gone", corev1.PodRunning, "", 1)},
		Held: []Held{{Gang: "g", Pods: []Pod{gpuPod(1)}, Nodes: []string{"gone"}}},
	}
	c, err := s.Cluster()
	if c == nil || err == nil {
		t.Fatalf("got cluster %v, error %v; want both", c, err)
	}
	want := "pod ns/p: node \"gone\" is not in the cluster\ngang g: pod 0 is placed on node \"gone\", which is not in the cluster"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestPodRequests(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	req := func(cpu string, gpus int64) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: list(cpu, "", gpus)}
	}
	cases := []struct {
		name string
		spec corev1.PodSpec
		want Resources
	}{
		{
			name: "containers add up",
			spec: corev1.PodSpec{Containers: []corev1.Container{{Resources: req("1", 1)}, {Resources: req("500m", 0)}}},
			want: Resources{MilliCPU: 1500, GPU: 1, Pods: 1},
		},
		{
			name: "limits stand in for missing requests",
			spec: corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Limits: list("2", "1Gi", 8)}}}},
			want: Resources{MilliCPU: 2000, Memory: 1 << 30, GPU: 8, Pods: 1},
		},
		{
			name: "a larger init step wins",
			spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Resources: req("4", 0)}},
				Containers:     []corev1.Container{{Resources: req("1", 1)}},
			},
			want: Resources{MilliCPU: 4000, GPU: 1, Pods: 1},
		},
		{
			name: "sidecars run beside everything, and overhead is added",
			spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Resources: req("1", 0), RestartPolicy: &always}, {Resources: req("2", 0)}},
				Containers:     []corev1.Container{{Resources: req("1", 1)}},
				Overhead:       corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
			},
			want: Resources{MilliCPU: 3250, GPU: 1, Pods: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, PodRequests(&tc.spec, gpu)); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlacementAnnotation(t *testing.T) {
	nodes := []string{"a", "a", "b"}
	if got := DecodePlacement(EncodePlacement(nodes)); !cmp.Equal(nodes, got) {
		t.Errorf("round trip gave %v", got)
	}
	if got := DecodePlacement(""); got != nil {
		t.Errorf("empty decodes to %v", got)
	}
}
