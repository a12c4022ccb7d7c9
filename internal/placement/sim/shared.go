package sim

import (
	"math/rand/v2"
	"slices"

	"kiln.dev/kiln/internal/placement"
)

// This file replays the trace as the paper does, with GPUs shared: a task of
// gpu_milli < 1000 takes that share of one GPU, so several can run on one.
// Kiln does not share GPUs; the replay is here only to compare Kiln's way of
// ranking nodes with the published figures on their own terms. It mirrors
// placement's rules on a node model with a free share per GPU.

// sharedNode is a node whose GPUs are tracked one by one, in thousandths.
type sharedNode struct {
	cpu, mem       int64 // free
	allocCPU       int64
	allocMem       int64
	gpus           []int64 // free thousandths of each GPU
	frag           float64 // fragmentation, when fragOK
	fragOK         bool
	allocGPUMillis int64
}

// sharedKey is a node's free capacity with its GPUs sorted, which is all
// fragmentation depends on.
type sharedKey struct {
	cpu, mem int64
	gpus     [8]int64
}

func (n *sharedNode) key() sharedKey {
	k := sharedKey{cpu: n.cpu, mem: n.mem}
	copy(k.gpus[:], n.gpus)
	slices.Sort(k.gpus[:len(n.gpus)])
	return k
}

// pick is the GPUs of a node a task takes (at most 8, as on every openb node).
type pick struct {
	gpu [8]int
	n   int
}

// fits returns the GPUs a task would take on n (none for a CPU task) and
// whether it fits. A share goes to the fullest GPU that has room for it.
func (n *sharedNode) fits(k *TraceTask) (pick, bool) {
	var p pick
	if k.MilliCPU > n.cpu || k.MemoryMiB > n.mem {
		return p, false
	}
	if k.GPUs == 0 {
		return p, true
	}
	if k.GPUMilli < 1000 {
		best := -1
		for i, f := range n.gpus {
			if f >= k.GPUMilli && (best < 0 || f < n.gpus[best]) {
				best = i
			}
		}
		p.gpu[0], p.n = best, 1
		return p, best >= 0
	}
	for i, f := range n.gpus {
		if f == 1000 && p.n < int(k.GPUs) {
			p.gpu[p.n] = i
			p.n++
		}
	}
	return p, p.n == int(k.GPUs)
}

func (n *sharedNode) apply(k *TraceTask, p pick, sign int64) {
	n.cpu -= sign * k.MilliCPU
	n.mem -= sign * k.MemoryMiB
	for _, g := range p.gpu[:p.n] {
		n.gpus[g] -= sign * k.GPUMilli
	}
}

func (n *sharedNode) freeGPU() int64 {
	var f int64
	for _, g := range n.gpus {
		f += g
	}
	return f
}

// sharedPacker ranks nodes as placement's policies do.
type sharedPacker struct {
	policy  placement.Policy
	mix     []sharedClass
	memo    map[sharedKey]float64
	largest placement.Resources // GPUs in thousandths, memory in MiB
}

type sharedClass struct {
	task   TraceTask
	weight float64
}

func newSharedPacker(policy placement.Policy, tasks []TraceTask) *sharedPacker {
	type shape struct{ cpu, mem, gpus, milli int64 }
	count := map[shape]int{}
	var total int
	for _, k := range tasks {
		if k.GPUs > 0 {
			count[shape{k.MilliCPU, k.MemoryMiB, k.GPUs, k.GPUMilli}]++
			total++
		}
	}
	p := &sharedPacker{policy: policy, memo: map[sharedKey]float64{}}
	for s, c := range count {
		p.mix = append(p.mix, sharedClass{TraceTask{MilliCPU: s.cpu, MemoryMiB: s.mem, GPUs: s.gpus, GPUMilli: s.milli}, float64(c) / float64(total)})
	}
	// Sum in a fixed order so that runs repeat exactly.
	slices.SortFunc(p.mix, func(a, b sharedClass) int {
		return slices.Compare([]int64{a.task.GPUs, a.task.GPUMilli, a.task.MilliCPU, a.task.MemoryMiB},
			[]int64{b.task.GPUs, b.task.GPUMilli, b.task.MilliCPU, b.task.MemoryMiB})
	})
	return p
}

// frag is placement's measure with shared GPUs: for each class, the free
// thousandths left over once the node holds as many of its tasks as fit,
// in GPUs.
func (p *sharedPacker) frag(n *sharedNode) float64 {
	free := n.freeGPU()
	if free == 0 {
		return 0
	}
	key := n.key()
	if f, ok := p.memo[key]; ok {
		return f
	}
	var f float64
	for _, c := range p.mix {
		k := &c.task
		var slots int64
		for _, g := range n.gpus {
			if k.GPUMilli < 1000 {
				slots += g / k.GPUMilli
			} else if g == 1000 {
				slots++
			}
		}
		copies := slots / k.GPUs
		if k.MilliCPU > 0 {
			copies = min(copies, n.cpu/k.MilliCPU)
		}
		if k.MemoryMiB > 0 {
			copies = min(copies, n.mem/k.MemoryMiB)
		}
		f += c.weight * float64(free-copies*k.GPUs*k.GPUMilli) / 1000
	}
	p.memo[key] = f
	return f
}

// cost ranks node n for task k, lowest first, as placement.Packer does.
func (p *sharedPacker) cost(n *sharedNode, k *TraceTask, gpus pick) [2]float64 {
	var before float64
	if p.policy == placement.FragAware {
		if !n.fragOK {
			n.frag, n.fragOK = p.frag(n), true
		}
		before = n.frag
	}
	n.apply(k, gpus, 1)
	defer n.apply(k, gpus, -1)
	switch p.policy {
	case placement.Spread:
		return [2]float64{-(float64(n.cpu)/float64(n.allocCPU) + float64(n.mem)/float64(n.allocMem))}
	case placement.FragAware:
		return [2]float64{p.frag(n) - before, p.leftover(n)}
	}
	return [2]float64{p.leftover(n)}
}

// leftover measures what n has left against the largest node, as placement does.
func (p *sharedPacker) leftover(n *sharedNode) float64 {
	return float64(n.freeGPU())/float64(p.largest.GPU) + float64(n.cpu)/float64(p.largest.MilliCPU) + float64(n.mem)/float64(p.largest.Memory)
}

func lessCost(a, b [2]float64) bool {
	const eps = 1e-9
	for i := range a {
		if d := a[i] - b[i]; d < -eps || d > eps {
			return d < 0
		}
	}
	return false
}

// ReplayShared offers the tasks one by one with GPUs shared, ranking nodes as
// policy does. The seed shuffles the node order, which decides ties.
func ReplayShared(t *Trace, tasks []TraceTask, policy placement.Policy, seed uint64) Fill {
	nodes := make([]sharedNode, len(t.Nodes))
	for i, tn := range t.Nodes {
		n := &nodes[i]
		n.cpu, n.mem, n.allocCPU, n.allocMem = tn.MilliCPU, tn.MemoryMiB, tn.MilliCPU, tn.MemoryMiB
		n.gpus = make([]int64, tn.GPUs)
		for g := range n.gpus {
			n.gpus[g] = 1000
		}
		n.allocGPUMillis = 1000 * tn.GPUs
	}
	rand.New(rand.NewPCG(seed, 0)).Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	p := newSharedPacker(policy, tasks)
	for _, n := range nodes {
		p.largest.GPU = max(p.largest.GPU, n.allocGPUMillis)
		p.largest.MilliCPU = max(p.largest.MilliCPU, n.allocCPU)
		p.largest.Memory = max(p.largest.Memory, n.allocMem)
	}

	capacity := float64(t.GPUs() * 1000)
	var fill Fill
	var used, asked int64
	for i := range tasks {
		k := &tasks[i]
		asked += k.GPUs * k.GPUMilli
		best := -1
		var bestGPUs pick
		var bestCost [2]float64
		for j := range nodes {
			gpus, ok := nodes[j].fits(k)
			if !ok {
				continue
			}
			if c := p.cost(&nodes[j], k, gpus); best < 0 || lessCost(c, bestCost) {
				best, bestGPUs, bestCost = j, gpus, c
			}
		}
		if best < 0 {
			if fill.Failed == 0 {
				fill.AtFirstFailure = float64(used) / capacity
			}
			fill.Failed++
			continue
		}
		nodes[best].apply(k, bestGPUs, 1)
		nodes[best].fragOK = false
		used += k.GPUs * k.GPUMilli
	}
	fill.AllArrived = float64(used) / capacity
	fill.Arrived = float64(asked) / capacity
	if fill.Failed == 0 {
		fill.AtFirstFailure = fill.AllArrived
	}
	return fill
}
