// Package placement decides where training runs: the shape of a job (nodes ×
// processes per node) from the GPU nodes a cluster has. It is pure: callers pass
// in what they observed.
package placement

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"kiln.dev/kiln/api/v1alpha1"
)

// NodeShape is a group of alike GPU nodes: same pool, same allocatable GPUs.
type NodeShape struct {
	// Pool names the node pool ("" when the nodes carry no pool label).
	Pool string
	// GPUsPerNode is the allocatable GPU count of each node.
	GPUsPerNode int32
	// Count is how many such nodes can take the job. Callers that know a pool's
	// autoscaling maximum may pass it here, so a job that fits what the pool can
	// grow to is not refused.
	Count int32
}

// Shape is how a job is laid out: Nodes pods, each with ProcessesPerNode
// processes and GPUsPerNode GPUs.
type Shape struct {
	Nodes            int32
	ProcessesPerNode int32
	GPUsPerNode      int32
	// Pool is set when all nodes of the shape fit in one pool.
	Pool string
	// Reason explains the choice to a person.
	Reason string
}

// Summary is the shape for display, such as "2x4".
func (s Shape) Summary() string {
	return fmt.Sprintf("%dx%d", s.Nodes, s.ProcessesPerNode)
}

// poolLabels are the node labels that name a pool, most specific first: the
// cloud's own node-pool labels, then the instance type and GPU product, which
// group identical machines when no pool label exists.
var poolLabels = [...]string{
	"cloud.google.com/gke-nodepool",
	"eks.amazonaws.com/nodegroup",
	"kubernetes.azure.com/agentpool",
	"karpenter.sh/nodepool",
	"node.kubernetes.io/instance-type",
	"nvidia.com/gpu.product",
}

// NodeShapesFromNodes groups the schedulable nodes offering gpuResource by pool and
// allocatable GPU count, largest nodes first.
func NodeShapesFromNodes(nodes []corev1.Node, gpuResource corev1.ResourceName) []NodeShape {
	type key struct {
		pool string
		gpus int32
	}
	counts := map[key]int32{}
	for i := range nodes {
		n := &nodes[i]
		if n.Spec.Unschedulable {
			continue
		}
		q, ok := n.Status.Allocatable[gpuResource]
		if !ok || q.Value() <= 0 {
			continue
		}
		counts[key{pool: poolOf(n), gpus: int32(min(q.Value(), 1<<30))}]++
	}
	shapes := make([]NodeShape, 0, len(counts))
	for k, c := range counts {
		shapes = append(shapes, NodeShape{Pool: k.pool, GPUsPerNode: k.gpus, Count: c})
	}
	sortShapes(shapes)
	return shapes
}

func poolOf(n *corev1.Node) string {
	for _, l := range poolLabels {
		if v := n.Labels[l]; v != "" {
			return v
		}
	}
	return ""
}

func sortShapes(shapes []NodeShape) {
	slices.SortFunc(shapes, func(a, b NodeShape) int {
		if c := cmp.Compare(b.GPUsPerNode, a.GPUsPerNode); c != 0 {
			return c
		}
		return cmp.Compare(a.Pool, b.Pool)
	})
}

// ForTrainingJob chooses the shape of a TrainingJob: its topology when set,
// otherwise the fewest nodes that hold its GPUs.
func ForTrainingJob(spec *v1alpha1.TrainingJobSpec, shapes []NodeShape) (Shape, error) {
	res := spec.Resources.GPUResource
	if res == "" {
		res = v1alpha1.DefaultGPUResource
	}
	if spec.Topology != nil {
		return FromTopology(*spec.Topology, spec.Resources.GPUs, res, shapes)
	}
	return Choose(spec.Resources.GPUs, res, shapes)
}

// Choose picks the fewest nodes that hold gpus GPUs, one process per GPU. The
// GPUs must split evenly (every rank gets the same hardware), so it takes the
// smallest node count n that divides gpus, whose share gpus/n fits on a node,
// and for which the nodes can hold n such pods. gpus == 0 is a CPU job: one node,
// one process.
func Choose(gpus int32, gpuResource string, shapes []NodeShape) (Shape, error) {
	if gpus < 0 {
		return Shape{}, fmt.Errorf("resources.gpus is %d; it must be 0 (a CPU job) or more", gpus)
	}
	if gpus == 0 {
		return Shape{Nodes: 1, ProcessesPerNode: 1, Reason: "CPU job: one node, one process"}, nil
	}
	shapes = usable(shapes)
	if len(shapes) == 0 {
		return Shape{}, fmt.Errorf("no schedulable node offers %s; add GPU nodes or set spec.resources.gpuResource to the resource your nodes advertise", gpuResource)
	}
	largest := shapes[0].GPUsPerNode
	if n, ok := evenSplit(gpus, shapes); ok {
		per := gpus / n
		s := Shape{Nodes: n, ProcessesPerNode: per, GPUsPerNode: per, Pool: poolFor(shapes, per, n)}
		if n == 1 {
			s.Reason = fmt.Sprintf("%d GPUs fit on one node%s (%d × %s)", gpus, inPool(s.Pool), nodeGPUs(shapes, s.Pool, per), gpuResource)
		} else {
			s.Reason = fmt.Sprintf("%d GPUs do not fit on one node (the largest has %d × %s); the fewest nodes that split them evenly are %d nodes × %s%s",
				gpus, largest, gpuResource, n, plural(per, "GPU"), inPool(s.Pool))
		}
		return s, nil
	}
	total := int64(0)
	for _, sh := range shapes {
		total += int64(sh.Count) * int64(sh.GPUsPerNode)
	}
	if int64(gpus) > total {
		return Shape{}, fmt.Errorf("needs %d × %s but the schedulable nodes have %d in all (%s); %s, or add nodes",
			gpus, gpuResource, total, describe(shapes), nearestCounts(gpus, shapes))
	}
	return Shape{}, fmt.Errorf("%d GPUs cannot be split evenly over these nodes (%s) with one worker pod per node; %s, or add nodes",
		gpus, describe(shapes), nearestCounts(gpus, shapes))
}

// evenSplit is the smallest node count n that divides gpus such that n nodes of
// shapes (usable, sorted) each hold one pod of gpus/n GPUs.
func evenSplit(gpus int32, shapes []NodeShape) (int32, bool) {
	if len(shapes) == 0 {
		return 0, false
	}
	for n := int32(1); n <= gpus; n++ {
		if gpus%n != 0 {
			continue
		}
		if per := gpus / n; per <= shapes[0].GPUsPerNode && podsThatFit(shapes, per) >= int64(n) {
			return n, true
		}
	}
	return 0, false
}

// nearestCounts names the GPU counts next to gpus, below and above, that Choose
// accepts on shapes, as "8 (1 node) or 16 (2 nodes) can".
func nearestCounts(gpus int32, shapes []NodeShape) string {
	var total int32
	for _, sh := range shapes {
		total += sh.Count * sh.GPUsPerNode
	}
	var found []string
	try := func(g int32) bool {
		if n, ok := evenSplit(g, shapes); ok {
			found = append(found, fmt.Sprintf("%d (%s)", g, plural(n, "node")))
			return true
		}
		return false
	}
	for g := gpus - 1; g >= 1 && !try(g); g-- {
	}
	for g := gpus + 1; g <= total && !try(g); g++ {
	}
	switch len(found) {
	case 0: // cannot happen: one GPU on one node always fits
		return "no count fits"
	case 1:
		return found[0] + " can"
	}
	return found[0] + " or " + found[1] + " can"
}

// FromTopology checks an explicit topology against the job's GPUs and, when node
// shapes are known, against the nodes present; it never changes it.
func FromTopology(t v1alpha1.Topology, gpus int32, gpuResource string, shapes []NodeShape) (Shape, error) {
	if t.Nodes < 1 || t.ProcessesPerNode < 1 {
		return Shape{}, fmt.Errorf("topology %dx%d: nodes and processesPerNode must be at least 1", t.Nodes, t.ProcessesPerNode)
	}
	s := Shape{
		Nodes:            t.Nodes,
		ProcessesPerNode: t.ProcessesPerNode,
		Reason:           fmt.Sprintf("set by spec.topology: %d × %d", t.Nodes, t.ProcessesPerNode),
	}
	if gpus == 0 {
		s.Reason += " CPU processes"
		return s, nil
	}
	if int64(t.Nodes)*int64(t.ProcessesPerNode) != int64(gpus) {
		return Shape{}, fmt.Errorf("topology %d × %d makes %d processes but resources.gpus is %d; they must be equal",
			t.Nodes, t.ProcessesPerNode, int64(t.Nodes)*int64(t.ProcessesPerNode), gpus)
	}
	s.GPUsPerNode = t.ProcessesPerNode
	shapes = usable(shapes)
	if len(shapes) == 0 {
		// Offline (export) or a pool scaled to zero: nothing to check against.
		return s, nil
	}
	if largest := shapes[0].GPUsPerNode; t.ProcessesPerNode > largest {
		return Shape{}, fmt.Errorf("topology asks for %d × %s per node but the largest node has %d (%s)",
			t.ProcessesPerNode, gpuResource, largest, describe(shapes))
	}
	if have := podsThatFit(shapes, t.ProcessesPerNode); have < int64(t.Nodes) {
		return Shape{}, fmt.Errorf("topology asks for %d pods with %d × %s each but the nodes present hold only %d (%s)",
			t.Nodes, t.ProcessesPerNode, gpuResource, have, describe(shapes))
	}
	s.Pool = poolFor(shapes, t.ProcessesPerNode, t.Nodes)
	return s, nil
}

// usable drops empty groups and sorts a copy, so callers may pass shapes in any order.
func usable(shapes []NodeShape) []NodeShape {
	out := make([]NodeShape, 0, len(shapes))
	for _, s := range shapes {
		if s.GPUsPerNode > 0 && s.Count > 0 {
			out = append(out, s)
		}
	}
	sortShapes(out)
	return out
}

// RanksPerNode is the one rule shape choice and gang admission share: how many
// worker pods (ranks of a shape) of gpusPerPod GPUs one node of nodeGPUs may hold.
// A GPU rank takes its node to itself — two ranks on one node would contend for
// its GPUs and network, and one pod with all of them does better — so it is 1 when
// the node has the GPUs and 0 otherwise. CPU ranks (gpusPerPod 0) share nodes.
func RanksPerNode(nodeGPUs, gpusPerPod int64) int64 {
	switch {
	case !OwnsNode(gpusPerPod):
		return 1 << 20
	case nodeGPUs >= gpusPerPod:
		return 1
	}
	return 0
}

// OwnsNode says whether a worker pod of gpusPerPod GPUs takes a node to itself
// (see RanksPerNode); gang admission marks such pods Pod.OwnNode.
func OwnsNode(gpusPerPod int64) bool { return gpusPerPod > 0 }

// podsThatFit counts the worker pods of per GPUs the nodes can hold, by RanksPerNode.
func podsThatFit(shapes []NodeShape, per int32) int64 {
	var n int64
	for _, s := range shapes {
		n += int64(s.Count) * RanksPerNode(int64(s.GPUsPerNode), int64(per))
	}
	return n
}

// poolFor names the pool that alone holds n pods of per GPUs, preferring the
// tightest fit so big nodes stay free for big jobs; "" when the job must span pools.
func poolFor(shapes []NodeShape, per, n int32) string {
	best := -1
	for i, s := range shapes {
		if podsThatFit([]NodeShape{s}, per) < int64(n) {
			continue
		}
		if best < 0 || s.GPUsPerNode < shapes[best].GPUsPerNode {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return shapes[best].Pool
}

// nodeGPUs is the GPU count of the nodes the shape lands on, for the reason text.
func nodeGPUs(shapes []NodeShape, pool string, per int32) int32 {
	for i := len(shapes) - 1; i >= 0; i-- { // smallest first: the tightest fit
		if s := shapes[i]; s.Pool == pool && s.GPUsPerNode >= per {
			return s.GPUsPerNode
		}
	}
	return per
}

func plural(n int32, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func inPool(pool string) string {
	if pool == "" {
		return ""
	}
	return " of pool " + pool
}

// describe lists the shapes as "p4d: 2 × 8 GPUs, g5: 4 × 4 GPUs".
func describe(shapes []NodeShape) string {
	parts := make([]string, 0, len(shapes))
	for _, s := range shapes {
		name := s.Pool
		if name == "" {
			name = "unpooled"
		}
		parts = append(parts, fmt.Sprintf("%s: %d × %d GPUs", name, s.Count, s.GPUsPerNode))
	}
	return strings.Join(parts, ", ")
}

// WiderThanNeeded explains a chosen shape that uses more nodes than the fewest that could
// hold its GPUs (a count that does not split evenly, such as 11 on 8-GPU nodes run
// as 11 × 1), naming nearby counts that use fewer; "" when the shape is as narrow
// as the GPUs allow. Admission and offline export give it as a warning.
func WiderThanNeeded(gpus int32, s Shape, shapes []NodeShape) string {
	shapes = usable(shapes)
	if gpus <= 0 || len(shapes) == 0 {
		return ""
	}
	largest := shapes[0].GPUsPerNode
	fewest := (gpus + largest - 1) / largest
	if s.Nodes <= fewest {
		return ""
	}
	var total int32
	for _, sh := range shapes {
		total += sh.Count * sh.GPUsPerNode
	}
	var better []string
	narrow := func(g int32) bool {
		n, ok := evenSplit(g, shapes)
		if ok && n <= (g+largest-1)/largest && n < s.Nodes {
			better = append(better, fmt.Sprintf("%d GPUs (%s)", g, plural(n, "node")))
			return true
		}
		return false
	}
	for g := gpus - 1; g >= 1 && !narrow(g); g-- {
	}
	for g := gpus + 1; g <= total && !narrow(g); g++ {
	}
	msg := fmt.Sprintf("%d GPUs do not split evenly over %d of these nodes (one worker pod per node, the same GPUs in each), so the job runs as %s: "+
		"%d worker pods on as many nodes, with more traffic between them and a larger gang to schedule",
		gpus, fewest, s.Summary(), s.Nodes)
	if len(better) > 0 {
		return msg + ". Fix: ask for " + strings.Join(better, " or ") + ", which use fewer nodes"
	}
	return msg + ". Fix: add nodes with more GPUs"
}
