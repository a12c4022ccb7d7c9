package placement

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// gpuNode is a node with 12 CPU and 96Gi of memory per GPU.
func gpuNode(name string, gpus int64) Node {
	return Node{Name: name, Allocatable: Resources{GPU: gpus, MilliCPU: gpus * 12000, Memory: gpus * 96 << 30}}
}

// gpuPod requests 8 CPU and 64Gi of memory per GPU.
func gpuPod(gpus int64) Pod {
	return Pod{Requests: Resources{GPU: gpus, MilliCPU: gpus * 8000, Memory: gpus * 64 << 30}}
}

func pods(n int, p Pod) []Pod {
	out := make([]Pod, n)
	for i := range out {
		out[i] = p
	}
	return out
}

// testMix is a workload of 1-, 2-, 4- and 8-GPU pods alike.
var testMix = MixOf([]Resources{gpuPod(1).Requests, gpuPod(2).Requests, gpuPod(4).Requests, gpuPod(8).Requests})

var gpuTaint = corev1.Taint{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule}

// used is capacity taken on a node before the test places anything.
type used struct {
	node string
	gpus int64
}

func cluster(t *testing.T, nodes []Node, taken ...used) *Cluster {
	t.Helper()
	c := NewCluster(nodes)
	for i, u := range taken {
		if err := c.Hold("running-"+string(rune('a'+i)), []Pod{gpuPod(u.gpus)}, []string{u.node}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestPlace(t *testing.T) {
	tolerant := gpuPod(1)
	tolerant.Tolerations = []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists}}
	selective := gpuPod(1)
	selective.NodeSelector = map[string]string{"pool": "a100"}
	labelled := gpuNode("labelled", 8)
	labelled.Labels = map[string]string{"pool": "a100"}
	tainted := gpuNode("tainted", 8)
	tainted.Taints = []corev1.Taint{gpuTaint}
	cordoned := gpuNode("cordoned", 8)
	cordoned.Unschedulable = true
	cpuHungry := gpuPod(1)
	cpuHungry.Requests.MilliCPU = 44000

	cases := []struct {
		name   string
		nodes  []Node
		taken  []used
		pods   []Pod
		policy Policy
		want   []string // nil: does not fit
	}{
		{
			name:  "1 GPU fills a partly used node, not an empty one",
			nodes: []Node{gpuNode("empty-a", 8), gpuNode("partly", 8), gpuNode("empty-b", 8)},
			taken: []used{{"partly", 5}},
			pods:  []Pod{gpuPod(1)},
			want:  []string{"partly"},
		},
		{
			name:   "best fit fills it too",
			nodes:  []Node{gpuNode("empty-a", 8), gpuNode("partly", 8), gpuNode("empty-b", 8)},
			taken:  []used{{"partly", 5}},
			pods:   []Pod{gpuPod(1)},
			policy: BestFit,
			want:   []string{"partly"},
		},
		{
			name:   "spread takes an empty node, as the default scheduler would",
			nodes:  []Node{gpuNode("empty-a", 8), gpuNode("partly", 8), gpuNode("empty-b", 8)},
			taken:  []used{{"partly", 5}},
			pods:   []Pod{gpuPod(1)},
			policy: Spread,
			want:   []string{"empty-a"},
		},
		{
			name:  "1 GPU prefers a partly used 8-GPU node to an empty 2-GPU node",
			nodes: []Node{gpuNode("small", 2), gpuNode("partly", 8)},
			taken: []used{{"partly", 1}},
			pods:  []Pod{gpuPod(1)},
			want:  []string{"partly"},
		},
		{
			name:  "8 GPUs get a whole node",
			nodes: []Node{gpuNode("partly", 8), gpuNode("whole", 8)},
			taken: []used{{"partly", 1}},
			pods:  []Pod{gpuPod(8)},
			want:  []string{"whole"},
		},
		{
			name:  "4 GPUs take the 4-GPU node and keep the 8-GPU node whole",
			nodes: []Node{gpuNode("eight", 8), gpuNode("four", 4)},
			pods:  []Pod{gpuPod(4)},
			want:  []string{"four"},
		},
		{
			name:  "2 x 4 GPUs share one node: the fewest nodes",
			nodes: []Node{gpuNode("four-a", 4), gpuNode("eight", 8), gpuNode("four-b", 4)},
			pods:  pods(2, gpuPod(4)),
			want:  []string{"eight", "eight"},
		},
		{
			name:  "2 x 8 GPUs span two whole nodes",
			nodes: []Node{gpuNode("a", 8), gpuNode("partly", 8), gpuNode("b", 8)},
			taken: []used{{"partly", 2}},
			pods:  pods(2, gpuPod(8)),
			want:  []string{"a", "b"},
		},
		{
			name:  "3 x 4 GPUs: one node for two, then the tightest for the third",
			nodes: []Node{gpuNode("eight-a", 8), gpuNode("eight-b", 8), gpuNode("four", 4)},
			pods:  pods(3, gpuPod(4)),
			want:  []string{"eight-a", "eight-a", "four"},
		},
		{
			name:  "all or nothing",
			nodes: []Node{gpuNode("a", 8), gpuNode("b", 8)},
			taken: []used{{"b", 1}},
			pods:  pods(2, gpuPod(8)),
		},
		{
			name:  "a node selector is honoured",
			nodes: []Node{gpuNode("plain", 8), labelled},
			pods:  []Pod{selective},
			want:  []string{"labelled"},
		},
		{
			name:  "a taint keeps intolerant pods off",
			nodes: []Node{tainted},
			pods:  []Pod{gpuPod(1)},
		},
		{
			name:  "a toleration lets them on",
			nodes: []Node{tainted},
			pods:  []Pod{tolerant},
			want:  []string{"tainted"},
		},
		{
			name:  "cordoned nodes take nothing",
			nodes: []Node{cordoned},
			pods:  []Pod{gpuPod(1)},
		},
		{
			name:  "free GPUs without CPU beside them do not count",
			nodes: []Node{gpuNode("busy", 4), gpuNode("idle", 4)},
			taken: []used{{"busy", 1}}, // leaves 3 GPUs but only 40 CPU
			pods:  []Pod{cpuHungry},
			want:  []string{"idle"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster(t, tc.nodes, tc.taken...)
			before := make(map[string]Resources)
			for _, n := range tc.nodes {
				before[n.Name], _ = c.Free(n.Name)
			}
			got, ok := NewPacker(tc.policy, testMix).Place(c, "gang", tc.pods)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("nodes (-want +got):\n%s", diff)
			}
			if ok != (tc.want != nil) {
				t.Errorf("ok = %v, want %v", ok, tc.want != nil)
			}
			if !ok {
				for _, n := range tc.nodes {
					if free, _ := c.Free(n.Name); free != before[n.Name] {
						t.Errorf("node %s: free %+v after a failed placement, want %+v as before", n.Name, free, before[n.Name])
					}
				}
			}
		})
	}
}

func TestFrag(t *testing.T) {
	p := NewPacker(FragAware, testMix)
	cases := []struct {
		name string
		free Resources
		want float64
	}{
		{"empty 8-GPU node is usable by every class", gpuNode("", 8).Allocatable, 0},
		{"3 free GPUs strand 3 for 4- and 8-GPU pods, 1 for 2-GPU pods", gpuNode("", 3).Allocatable, (0 + 1 + 3 + 3) / 4.0},
		{"GPUs without CPU are all fragment", Resources{GPU: 4, Memory: 1 << 40}, 4},
		{"no free GPU, no fragment", Resources{MilliCPU: 1000}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.frag(tc.free); got != tc.want {
				t.Errorf("frag = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMixOf(t *testing.T) {
	one, eight := gpuPod(1).Requests, gpuPod(8).Requests
	got := MixOf([]Resources{one, one, one, eight, {MilliCPU: 1000}})
	want := []Class{{Requests: eight, Weight: 0.25}, {Requests: one, Weight: 0.75}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mix (-want +got):\n%s", diff)
	}
}

// The ranks of a multi-node shape each take a node, however little they request: 8 CPU ranks
// asking for nothing must not all land on one node.
func TestOwnNodeRanksTakeDistinctNodes(t *testing.T) {
	rank := Pod{Requests: Resources{MilliCPU: 100}, OwnNode: true}
	for _, tc := range []struct {
		name  string
		nodes int
		ranks int
		fits  bool
	}{
		{"as many nodes as ranks", 4, 4, true},
		{"more nodes than ranks", 6, 4, true},
		{"fewer nodes than ranks", 3, 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var nodes []Node
			for i := range tc.nodes {
				nodes = append(nodes, Node{Name: string(rune('a' + i)), Allocatable: Resources{MilliCPU: 16000, Memory: 64 << 30}})
			}
			c := NewCluster(nodes)
			got, ok := NewPacker(FragAware, nil).Place(c, "job", pods(tc.ranks, rank))
			if ok != tc.fits {
				t.Fatalf("Place = %v, %v; want fits=%v", got, ok, tc.fits)
			}
			if !tc.fits {
				d := Admit(NewCluster(nodes), []Gang{{ID: "job", Pods: pods(tc.ranks, rank)}}, nil)
				if want := "its 4 ranks each need a node of their own but only 3 node(s) may run them"; d[0].State != Refused || !strings.Contains(d[0].Reason, want) {
					t.Errorf("Admit = %s %q, want Refused with %q", d[0].State, d[0].Reason, want)
				}
			}
			seen := map[string]bool{}
			for _, n := range got {
				if seen[n] {
					t.Fatalf("two ranks on node %s: %v", n, got)
				}
				seen[n] = true
			}
		})
	}
}
