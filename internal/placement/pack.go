package placement

import (
	"cmp"
	"slices"
)

// Policy is how a Packer ranks the nodes that can take a gang's pods. Every
// policy first prefers the nodes that take more of the gang (the fewest nodes);
// they differ only after that.
type Policy int

const (
	// FragAware is Kiln's: the node where fragmentation (free GPUs the
	// expected workload could not use) grows least, then best fit. An empty
	// 8-GPU node loses nothing to a mix of 1-, 2-, 4- and 8-GPU pods, and a
	// small pod placed on it makes it useless to the 8-GPU ones; so small pods
	// fill partly used nodes first and whole nodes stay whole for big gangs,
	// unless filling a partly used node would strand more GPUs (when its CPU
	// or memory runs out first, say).
	FragAware Policy = iota
	// BestFit leaves the least capacity over: the smallest sum of free GPU,
	// CPU and memory after placing, each measured against the largest node.
	BestFit
	// Spread leaves the most CPU and memory over, as kube-scheduler's default
	// LeastAllocated scoring (CPU and memory, weight 1 each) does.
	Spread
)

func (p Policy) String() string {
	switch p {
	case FragAware:
		return "kiln"
	case BestFit:
		return "best-fit"
	case Spread:
		return "spread"
	}
	return "unknown"
}

// Class is a kind of GPU pod expected in the workload and its share of it.
type Class struct {
	Requests Resources
	Weight   float64
}

// MixOf turns the requests of pods seen (queued and running) into the
// workload FragAware protects: one class per distinct request, weighted by
// how often it occurs. Pods without GPUs are left out: fragmentation is
// counted in GPUs.
func MixOf(requests []Resources) []Class {
	count := map[Resources]int{}
	var total int
	for _, r := range requests {
		if r.GPU > 0 {
			count[r]++
			total++
		}
	}
	mix := make([]Class, 0, len(count))
	for r, n := range count {
		mix = append(mix, Class{Requests: r, Weight: float64(n) / float64(total)})
	}
	slices.SortFunc(mix, func(a, b Class) int { return compareSize(b.Requests, a.Requests) })
	return mix
}

// Packer chooses nodes for gangs. It remembers fragmentation per free
// capacity, so reuse one Packer for a whole admission pass or simulation.
type Packer struct {
	policy Policy
	mix    []Class
	memo   map[Resources]float64
}

// NewPacker makes a Packer; mix matters to FragAware only.
func NewPacker(policy Policy, mix []Class) *Packer {
	return &Packer{policy: policy, mix: mix, memo: map[Resources]float64{}}
}

// Place puts all of a gang's pods on the free capacity and holds them, or
// changes nothing and returns false: there is no partial placement. A gang
// already held is not placed twice.
func (p *Packer) Place(c *Cluster, gang string, pods []Pod) ([]string, bool) {
	if _, ok := c.held[gang]; ok {
		return nil, false
	}
	at := p.plan(c, pods, c.free, false)
	if at == nil {
		return nil, false
	}
	nodes := make([]string, len(at))
	hs := make([]hold, len(at))
	for i, n := range at {
		nodes[i] = c.nodes[n].Name
		hs[i] = hold{node: n, req: pods[i].Requests}
	}
	c.held[gang] = hs // plan has already debited c.free
	return nodes, true
}

// plan assigns every pod a node index on the capacity free, debiting free as
// it goes. When the pods do not all fit it restores free and returns nil.
// Unschedulable nodes are used only when all is set (to ask whether a gang
// could ever fit).
//
// Pods go largest first. Each step picks the node that takes all the pods
// left, or failing that the most of them, ranked by the policy after that; so
// a gang lands on the fewest nodes the greedy order can find.
func (p *Packer) plan(c *Cluster, pods []Pod, free []Resources, all bool) []int {
	at := make([]int, len(pods))
	for i := range at {
		at[i] = -1
	}
	left := largestFirst(pods)
	taken := map[int]bool{} // nodes holding a rank that wants its node to itself

	for len(left) > 0 {
		best, bestK := -1, 0
		var bestCost [2]float64
		for n := range c.nodes {
			if c.nodes[n].Unschedulable && !all || taken[n] {
				continue
			}
			k, took := take(&c.nodes[n], free[n], pods, left)
			if k == 0 {
				continue
			}
			w := -1
			if best >= 0 {
				w = prefer(k, bestK, len(left))
			}
			if w > 0 {
				continue
			}
			cost := p.cost(c, n, free[n], took)
			if w == 0 && !less(cost, bestCost) {
				continue
			}
			best, bestK, bestCost = n, k, cost
		}
		if best < 0 {
			for i, n := range at {
				if n >= 0 {
					free[n] = free[n].add(pods[i].Requests)
				}
			}
			return nil
		}
		room := free[best]
		kept := left[:0]
		k := 0
		for _, i := range left {
			if r := pods[i].Requests; k < bestK && pods[i].admits(&c.nodes[best]) && r.within(room) {
				room = room.sub(r)
				at[i] = best
				k++
				taken[best] = taken[best] || pods[i].OwnNode
				continue
			}
			kept = append(kept, i)
		}
		free[best] = room
		left = kept
	}
	return at
}

// take is how many of the pods left (largest first) fit on node n with free
// capacity, and what they request together.
func take(n *Node, free Resources, pods []Pod, left []int) (int, Resources) {
	var k int
	var took Resources
	for _, i := range left {
		if k > 0 && pods[i].OwnNode {
			break // a rank of a multi-node shape takes a node to itself
		}
		if r := pods[i].Requests; r.within(free) && pods[i].admits(n) {
			free = free.sub(r)
			took = took.add(r)
			k++
			if pods[i].OwnNode {
				break
			}
		}
	}
	return k, took
}

// prefer compares the rules that come before the policy's cost: < 0 when node
// n is better than the best so far, > 0 when worse, 0 on a tie.
func prefer(k, bestK, left int) int {
	if (k == left) != (bestK == left) { // one node for everything that is left
		if k == left {
			return -1
		}
		return 1
	}
	if k != bestK {
		return cmp.Compare(bestK, k)
	}
	return 0
}

// cost ranks a node for taking took under the policy, lowest first: a
// primary score and a tiebreak.
func (p *Packer) cost(c *Cluster, n int, free, took Resources) [2]float64 {
	after := free.sub(took)
	switch p.policy {
	case Spread:
		alloc := c.nodes[n].Allocatable
		return [2]float64{-(share(after.MilliCPU, alloc.MilliCPU) + share(after.Memory, alloc.Memory))}
	case FragAware:
		return [2]float64{p.frag(after) - p.frag(free), leftover(after, c.largest)}
	}
	return [2]float64{leftover(after, c.largest)}
}

// less compares costs; differences below rounding noise are ties, so that
// equal nodes fall to the tiebreak and then to node order.
func less(a, b [2]float64) bool {
	const eps = 1e-9
	if d := a[0] - b[0]; d < -eps || d > eps {
		return d < 0
	}
	return a[1] < b[1]-eps
}

// leftover is what a node would have left, each resource measured against the
// largest node's, so that a small remainder on a small node counts as small.
func leftover(free, largest Resources) float64 {
	return share(free.GPU, largest.GPU) + share(free.MilliCPU, largest.MilliCPU) + share(free.Memory, largest.Memory)
}

func share(free, alloc int64) float64 {
	if alloc <= 0 {
		return 0
	}
	return float64(free) / float64(alloc)
}

// frag is the expected number of a node's free GPUs that the workload could
// not use: for each class, fill the node with as many of its pods as fit
// (GPUs, CPU and memory all count) and see how many free GPUs are left over.
// A node with free GPUs but no CPU left is all fragment; an empty 8-GPU node
// is none for 1-, 2-, 4- and 8-GPU pods alike. The idea follows Weng et al.,
// "Beware of Fragmentation" (USENIX ATC '23): place where the fragmentation
// of the workload grows least.
func (p *Packer) frag(free Resources) float64 {
	if free.GPU <= 0 {
		return 0
	}
	if f, ok := p.memo[free]; ok {
		return f
	}
	var f float64
	for _, c := range p.mix {
		f += c.Weight * float64(free.GPU-c.Requests.GPU*c.Requests.copies(free))
	}
	if len(p.memo) >= 1<<16 { // bounded for a long-running manager
		clear(p.memo)
	}
	p.memo[free] = f
	return f
}

// largestFirst is the indices of pods, largest request first.
func largestFirst(pods []Pod) []int {
	order := make([]int, len(pods))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return compareSize(pods[b].Requests, pods[a].Requests) })
	return order
}

// compareSize orders requests by GPUs, then CPU, then memory.
func compareSize(a, b Resources) int {
	if c := cmp.Compare(a.GPU, b.GPU); c != 0 {
		return c
	}
	if c := cmp.Compare(a.MilliCPU, b.MilliCPU); c != 0 {
		return c
	}
	return cmp.Compare(a.Memory, b.Memory)
}
