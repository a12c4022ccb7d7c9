package placement

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func gang(id string, priority int32, minute int, members ...Pod) Gang {
	return Gang{ID: id, Priority: priority, Arrival: epoch.Add(time.Duration(minute) * time.Minute), Pods: members}
}

// slot is a CPU rank that requests nothing: only a pod slot.
var slot = Pod{Requests: Resources{Pods: 1}}

func slotNode(name string, maxPods int64) Node {
	return Node{Name: name, Allocatable: Resources{MilliCPU: 16000, Memory: 64 << 30, Pods: maxPods}}
}

func TestAdmit(t *testing.T) {
	h100 := gpuPod(8)
	h100.NodeSelector = map[string]string{"pool": "h100"}
	tolerant := gpuPod(8)
	tolerant.Tolerations = []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	tainted := func(name string) Node {
		n := gpuNode(name, 8)
		n.Taints = []corev1.Taint{gpuTaint}
		return n
	}
	cpuHungry := gpuPod(2)
	cpuHungry.Requests.MilliCPU = 90000
	eight := []Node{gpuNode("a", 8), gpuNode("b", 8)}

	cases := []struct {
		name  string
		nodes []Node
		taken []used
		queue []Gang
		want  []Decision
	}{
		{
			name:  "a gang that fits is admitted whole",
			nodes: eight,
			queue: []Gang{gang("job", 0, 0, pods(2, gpuPod(8))...)},
			want:  []Decision{{Gang: "job", State: Admitted, Nodes: []string{"a", "b"}}},
		},
		{
			name:  "no partial start: half the gang fits, none of it starts",
			nodes: eight,
			taken: []used{{"b", 4}},
			queue: []Gang{gang("job", 0, 0, pods(2, gpuPod(8))...)},
			want: []Decision{{Gang: "job", State: Waiting,
				Reason: "needs 2 nodes with 8 free nvidia.com/gpu; only 1 has that"}},
		},
		{
			name:  "the reason names the largest free block",
			nodes: eight,
			taken: []used{{"a", 4}, {"b", 4}},
			queue: []Gang{gang("job", 0, 0, pods(2, gpuPod(8))...)},
			want: []Decision{{Gang: "job", State: Waiting,
				Reason: "needs 2 nodes with 8 free nvidia.com/gpu; largest free block is 4"}},
		},
		{
			name:  "a single pod waits for a node",
			nodes: eight,
			taken: []used{{"a", 6}, {"b", 5}},
			queue: []Gang{gang("job", 0, 0, gpuPod(4))},
			want: []Decision{{Gang: "job", State: Waiting,
				Reason: "needs a node with 4 free nvidia.com/gpu; largest free block is 3"}},
		},
		{
			name:  "small pods are counted, not nodes",
			nodes: eight,
			taken: []used{{"a", 7}, {"b", 6}},
			queue: []Gang{gang("job", 0, 0, pods(4, gpuPod(1))...)},
			want: []Decision{{Gang: "job", State: Waiting,
				Reason: "needs room for 4 pods, the largest with 1 free nvidia.com/gpu; the free capacity holds 3 of them; largest free block is 2"}},
		},
		{
			name:  "when GPUs are free but CPU is not, the reason says so",
			nodes: eight,
			taken: []used{{"a", 4}},
			queue: []Gang{gang("job", 0, 0, cpuHungry, cpuHungry)},
			want: []Decision{{Gang: "job", State: Waiting,
				Reason: "needs 2 nodes with 2 free nvidia.com/gpu with 90 CPU and 128Gi memory; only 1 has that"}},
		},
		{
			name:  "higher priority first, even when it came later",
			nodes: eight[:1],
			queue: []Gang{gang("low", 0, 0, gpuPod(8)), gang("high", 10, 5, gpuPod(8))},
			want: []Decision{
				{Gang: "high", State: Admitted, Nodes: []string{"a"}},
				{Gang: "low", State: Waiting, Reason: "needs a node with 8 free nvidia.com/gpu; largest free block is 0"},
			},
		},
		{
			name:  "within a priority, first come first served",
			nodes: eight[:1],
			queue: []Gang{gang("second", 0, 5, gpuPod(8)), gang("first", 0, 1, gpuPod(8))},
			want: []Decision{
				{Gang: "first", State: Admitted, Nodes: []string{"a"}},
				{Gang: "second", State: Waiting, Reason: "needs a node with 8 free nvidia.com/gpu; largest free block is 0"},
			},
		},
		{
			name:  "a gang larger than the cluster is refused, not queued",
			nodes: eight,
			queue: []Gang{gang("huge", 0, 0, pods(3, gpuPod(8))...)},
			want: []Decision{{Gang: "huge", State: Refused,
				Reason: "needs 24 nvidia.com/gpu in all but the nodes it may run on have 16; lower the GPU count or add nodes"}},
		},
		{
			name:  "a pod larger than every node is refused",
			nodes: eight,
			queue: []Gang{gang("wide", 0, 0, gpuPod(16))},
			want: []Decision{{Gang: "wide", State: Refused,
				Reason: "pod 0 requests 16 nvidia.com/gpu but no node it may run on has that much allocatable (the largest offer 8 nvidia.com/gpu)"}},
		},
		{
			name:  "a refused gang does not block the queue",
			nodes: eight,
			queue: []Gang{gang("huge", 0, 0, pods(3, gpuPod(8))...), gang("small", 0, 1, gpuPod(1))},
			want: []Decision{
				{Gang: "huge", State: Refused, Reason: "needs 24 nvidia.com/gpu in all but the nodes it may run on have 16; lower the GPU count or add nodes"},
				{Gang: "small", State: Admitted, Nodes: []string{"a"}},
			},
		},
		{
			name:  "a node selector no node matches is refused",
			nodes: eight,
			queue: []Gang{gang("job", 0, 0, h100)},
			want: []Decision{{Gang: "job", State: Refused,
				Reason: "pod 0 can run on no node: no node has the labels of its nodeSelector pool=h100"}},
		},
		{
			name:  "taints nobody tolerates are refused",
			nodes: []Node{tainted("t")},
			queue: []Gang{gang("job", 0, 0, gpuPod(8))},
			want: []Decision{{Gang: "job", State: Refused,
				Reason: "pod 0 can run on no node: it tolerates the taints of no node"}},
		},
		{
			name:  "tolerated taints are fine",
			nodes: []Node{tainted("t")},
			queue: []Gang{gang("job", 0, 0, tolerant)},
			want:  []Decision{{Gang: "job", State: Admitted, Nodes: []string{"t"}}},
		},
		{
			name:  "the selector limits the capacity counted for refusal",
			nodes: []Node{func() Node { n := gpuNode("h", 8); n.Labels = map[string]string{"pool": "h100"}; return n }(), gpuNode("x", 8)},
			queue: []Gang{gang("job", 0, 0, h100, h100)},
			want: []Decision{{Gang: "job", State: Refused,
				Reason: "needs 16 nvidia.com/gpu in all but the nodes it may run on have 8; lower the GPU count or add nodes"}},
		},
		{
			name:  "backfill runs small gangs beside a waiting big one",
			nodes: []Node{gpuNode("a", 8), gpuNode("b", 8), gpuNode("c", 8)},
			taken: []used{{"a", 2}, {"b", 1}, {"c", 6}},
			queue: []Gang{gang("big", 0, 0, pods(2, gpuPod(8))...), gang("small", 0, 1, gpuPod(2))},
			want: []Decision{
				{Gang: "big", State: Waiting, Reason: "needs 2 nodes with 8 free nvidia.com/gpu; largest free block is 7"},
				{Gang: "small", State: Admitted, Nodes: []string{"c"}},
			},
		},
		{
			name:  "but never on the capacity the head waits for",
			nodes: []Node{gpuNode("a", 8), gpuNode("b", 8), gpuNode("c", 8)},
			taken: []used{{"a", 2}, {"b", 1}, {"c", 6}},
			queue: []Gang{gang("big", 0, 0, pods(2, gpuPod(8))...), gang("small", 0, 1, gpuPod(4))},
			want: []Decision{
				{Gang: "big", State: Waiting, Reason: "needs 2 nodes with 8 free nvidia.com/gpu; largest free block is 7"},
				{Gang: "small", State: Waiting, Reason: "waits behind big, which is first in line and has first claim on the free capacity this gang would use"},
			},
		},
		{
			// Pods that request nothing still take one of the node's pod slots.
			name:  "request-less gangs stop at a node's pod limit",
			nodes: []Node{slotNode("a", 10), slotNode("b", 10)},
			queue: []Gang{gang("one", 0, 0, pods(6, slot)...), gang("two", 0, 1, pods(6, slot)...)},
			want: []Decision{
				{Gang: "one", State: Admitted, Nodes: []string{"a", "a", "a", "a", "a", "a"}},
				{Gang: "two", State: Admitted, Nodes: []string{"b", "b", "b", "b", "b", "b"}},
			},
		},
		{
			name:  "and wait, saying so, when every node is full",
			nodes: []Node{slotNode("a", 4)},
			taken: []used{},
			queue: []Gang{gang("one", 0, 0, pods(3, slot)...), gang("two", 0, 1, pods(3, slot)...)},
			want: []Decision{
				{Gang: "one", State: Admitted, Nodes: []string{"a", "a", "a"}},
				{Gang: "two", State: Waiting, Reason: "needs room for 3 pods, the largest with no resources free; the free capacity holds 1 of them; every node it may use runs as many pods as it allows (its allocatable pods)"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster(t, tc.nodes, tc.taken...)
			got := Admit(c, tc.queue, nil)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
			for _, d := range got {
				nodes, held := c.Holds(d.Gang)
				if held != (d.State == Admitted) || (held && !cmp.Equal(nodes, d.Nodes)) {
					t.Errorf("gang %s: held %v on %v, decision %s on %v", d.Gang, held, nodes, d.State, d.Nodes)
				}
			}
		})
	}
}

// TestAdmitIsIdempotent: a gang admitted earlier and passed again (a manager
// that restarted between admitting and recording it) keeps its nodes and is
// not booked twice.
func TestAdmitIsIdempotent(t *testing.T) {
	c := cluster(t, []Node{gpuNode("a", 8), gpuNode("b", 8)})
	q := []Gang{gang("job", 0, 0, gpuPod(8))}
	first := Admit(c, q, nil)
	again := Admit(c, q, nil)
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("second pass (-first +second):\n%s", diff)
	}
	if free, _ := c.Free("b"); free.GPU != 8 {
		t.Errorf("node b has %d free GPUs, want 8: the gang was booked twice", free.GPU)
	}
}

// TestBigGangNotStarved: a steady stream of 1-GPU jobs, more than the
// cluster can run, each lasting 2 to 6 steps, keeps every node partly busy. A
// 16-GPU gang arriving among them must start once the nodes it claimed have
// drained (within the longest job's lifetime), while small jobs that came
// after it keep starting on the node it does not need.
func TestBigGangNotStarved(t *testing.T) {
	const arrives, longest = 4, 6
	c := cluster(t, []Node{gpuNode("a", 8), gpuNode("b", 8), gpuNode("c", 8)})
	p := NewPacker(FragAware, testMix)
	var queue []Gang
	lifetime := map[string]int{}
	running := map[string]int{} // gang → step it ends
	bigStarted, backfilled := -1, 0
	for step := 0; step < 40 && bigStarted < 0; step++ {
		for id, end := range running {
			if end == step {
				c.Release(id)
				delete(running, id)
			}
		}
		for i := 0; i < 8; i++ {
			id := fmt.Sprintf("small-%02d-%d", step, i)
			lifetime[id] = 2 + (step+i)%(longest-1)
			queue = append(queue, gang(id, 0, step, gpuPod(1)))
		}
		if step == arrives {
			queue = append(queue, gang("big", 0, step, pods(2, gpuPod(8))...))
		}
		var waiting []Gang
		for _, d := range Admit(c, queue, p) {
			switch {
			case d.State == Admitted && d.Gang == "big":
				bigStarted = step
			case d.State == Admitted:
				running[d.Gang] = step + lifetime[d.Gang]
				if gangByID(queue, d.Gang).Arrival.After(epoch.Add(arrives * time.Minute)) {
					backfilled++ // came after the big gang, started before it
				}
			case d.State == Waiting:
				waiting = append(waiting, gangByID(queue, d.Gang))
			default:
				t.Fatalf("%s: %s %s", d.Gang, d.State, d.Reason)
			}
		}
		queue = waiting
	}
	t.Logf("big started at step %d; %d later small jobs started while it waited", bigStarted, backfilled)
	if bigStarted < 0 || bigStarted > arrives+longest {
		t.Errorf("the 16-GPU gang started at step %d, want by step %d", bigStarted, arrives+longest)
	}
	if backfilled == 0 {
		t.Errorf("no later small job started while the big one waited; the node it does not need should be backfilled")
	}
}

func gangByID(gs []Gang, id string) Gang {
	for _, g := range gs {
		if g.ID == id {
			return g
		}
	}
	panic("no gang " + id)
}
