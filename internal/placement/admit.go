package placement

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Gang is a job whose pods start together or not at all.
type Gang struct {
	// ID names the gang across passes, such as "namespace/name" of its Job.
	ID       string
	Priority int32
	Arrival  time.Time
	// Pods are the gang's members by index (completion index of an Indexed Job).
	Pods []Pod
}

// State is what Admit decided for a gang.
type State string

const (
	// Admitted gangs have a node for every pod and hold that capacity.
	Admitted State = "Admitted"
	// Waiting gangs do not fit the free capacity now but would an empty cluster.
	Waiting State = "Waiting"
	// Refused gangs would not fit even if the cluster were empty.
	Refused State = "Refused"
)

// Decision is Admit's answer for one gang.
type Decision struct {
	Gang  string
	State State
	// Nodes[i] is the node pod i is pinned to, when Admitted.
	Nodes []string
	// Reason says, for a person, what a Waiting gang waits for or why a gang
	// is Refused.
	Reason string
}

// Admit decides the queue in order of priority (highest first), then arrival,
// then ID, against the free capacity of c, and holds the gangs it admits in c.
// A gang is admitted only with a node for every pod.
//
// Head of line: the first gang that does not fit is the head. It keeps first
// claim on the nodes closest to holding it: their free capacity, up to what
// the head needs there, is invisible to the gangs behind it. Smaller gangs
// still start on the rest of the cluster (backfill), but never on capacity
// the head is waiting for, so as running gangs finish the head's nodes only
// drain and a big gang is not starved by a stream of small ones. Kiln does
// not know how long jobs run, so this is the guarantee it can give without
// runtime estimates; gangs behind the head have no claim and wait their turn.
//
// A nil Packer means FragAware, protecting the mix of the pods held and queued.
func Admit(c *Cluster, queue []Gang, p *Packer) []Decision {
	if p == nil {
		p = NewPacker(FragAware, c.mix(queue))
	}
	order := slices.Clone(queue)
	slices.SortStableFunc(order, func(a, b Gang) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		if c := a.Arrival.Compare(b.Arrival); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})

	var head string
	var claim []hold
	out := make([]Decision, 0, len(order))
	for _, g := range order {
		if nodes, ok := c.Holds(g.ID); ok {
			out = append(out, Decision{Gang: g.ID, State: Admitted, Nodes: nodes})
			continue
		}
		if why := c.refusal(p, g.Pods); why != "" {
			out = append(out, Decision{Gang: g.ID, State: Refused, Reason: why})
			continue
		}
		if nodes, ok := p.Place(c, g.ID, g.Pods); ok {
			out = append(out, Decision{Gang: g.ID, State: Admitted, Nodes: nodes})
			continue
		}
		d := Decision{Gang: g.ID, State: Waiting}
		if head == "" {
			head = g.ID
			d.Reason = c.waitReason(g.Pods)
			claim = c.claim(g.Pods)
		} else if c.fitsWithout(p, claim, g.Pods) {
			d.Reason = fmt.Sprintf("waits behind %s, which is first in line and has first claim on the free capacity this gang would use", head)
		} else {
			c.unclaim(claim)
			d.Reason = c.waitReason(g.Pods)
			c.reclaim(claim)
		}
		out = append(out, d)
	}
	c.unclaim(claim)
	return out
}

// mix is the workload of the pods held and queued.
func (c *Cluster) mix(queue []Gang) []Class {
	var reqs []Resources
	for _, hs := range c.held {
		for _, h := range hs {
			reqs = append(reqs, h.req)
		}
	}
	for _, g := range queue {
		for _, pod := range g.Pods {
			reqs = append(reqs, pod.Requests)
		}
	}
	return MixOf(reqs)
}

// claim sets capacity aside for the head of the queue: pod by pod, largest
// first, the node it is closest to fitting now (the smallest shortfall) among
// those where it fits once running gangs finish. The claimed capacity leaves
// c.free, which may go negative where the head needs more than is free.
func (c *Cluster) claim(pods []Pod) []hold {
	order := largestFirst(pods)
	eventual := make([]Resources, len(c.nodes))
	for n := range c.nodes {
		eventual[n] = c.nodes[n].Allocatable.sub(c.other[n])
	}
	var out []hold
	for _, i := range order {
		r := pods[i].Requests
		best, bestShort := -1, 0.0
		for n := range c.nodes {
			node := &c.nodes[n]
			if node.Unschedulable || !r.within(eventual[n]) || !pods[i].admits(node) {
				continue
			}
			if s := shortfall(r, c.free[n], node.Allocatable); best < 0 || s < bestShort {
				best, bestShort = n, s
			}
		}
		if best < 0 {
			continue // only what an unschedulable node could hold; nothing to drain
		}
		eventual[best] = eventual[best].sub(r)
		c.free[best] = c.free[best].sub(r)
		out = append(out, hold{node: best, req: r})
	}
	return out
}

func (c *Cluster) unclaim(claim []hold) {
	for _, h := range claim {
		c.free[h.node] = c.free[h.node].add(h.req)
	}
}

func (c *Cluster) reclaim(claim []hold) {
	for _, h := range claim {
		c.free[h.node] = c.free[h.node].sub(h.req)
	}
}

// fitsWithout reports whether pods would fit if the head had no claim.
func (c *Cluster) fitsWithout(p *Packer, claim []hold, pods []Pod) bool {
	if len(claim) == 0 {
		return false
	}
	c.unclaim(claim)
	defer c.reclaim(claim)
	free := slices.Clone(c.free)
	return p.plan(c, pods, free, false) != nil
}

// shortfall is how far r is from fitting in free, as fractions of the node.
func shortfall(r, free, alloc Resources) float64 {
	return share(max(r.GPU-free.GPU, 0), alloc.GPU) +
		share(max(r.MilliCPU-free.MilliCPU, 0), alloc.MilliCPU) +
		share(max(r.Memory-free.Memory, 0), alloc.Memory) +
		share(max(r.Pods-free.Pods, 0), alloc.Pods)
}

// refusal explains why pods could never run together on this cluster, even
// empty (unschedulable nodes included), or returns "".
func (c *Cluster) refusal(p *Packer, pods []Pod) string {
	gpu := c.gpuName()
	var total, eligibleTotal Resources
	anyEligible := make([]bool, len(c.nodes))
	for i := range pods {
		pod := &pods[i]
		total = total.add(pod.Requests)
		eligible, fits := false, false
		var largest Resources
		for n := range c.nodes {
			node := &c.nodes[n]
			if !pod.admits(node) {
				continue
			}
			eligible = true
			anyEligible[n] = true
			fits = fits || pod.Requests.within(node.Allocatable)
			largest = maxOf(largest, node.Allocatable)
		}
		switch {
		case !eligible:
			return fmt.Sprintf("pod %d can run on no node: %s", i, noNodeBecause(pod, c.nodes))
		case !fits:
			host := pod.Requests.GPU <= largest.GPU
			return fmt.Sprintf("pod %d requests %s but no node it may run on has that much allocatable (the largest offer %s)",
				i, pod.Requests.describe(gpu, host), largest.describe(gpu, host))
		}
	}
	for n, ok := range anyEligible {
		if ok {
			eligibleTotal = eligibleTotal.add(c.nodes[n].Allocatable)
		}
	}
	if total.GPU > eligibleTotal.GPU {
		return fmt.Sprintf("needs %d %s in all but the nodes it may run on have %d; lower the GPU count or add nodes",
			total.GPU, gpu, eligibleTotal.GPU)
	}
	if nodes := countTrue(anyEligible); len(pods) > 0 && pods[0].OwnNode && len(pods) > nodes {
		return fmt.Sprintf("its %d ranks each need a node of their own but only %d node(s) may run them; ask for fewer GPUs or add nodes",
			len(pods), nodes)
	}
	empty := make([]Resources, len(c.nodes))
	for n := range c.nodes {
		empty[n] = c.nodes[n].Allocatable
	}
	if p.plan(c, pods, empty, true) == nil {
		return fmt.Sprintf("its %d pods (%s in all) do not fit together even on the empty cluster", len(pods), total.describe(gpu, true))
	}
	return ""
}

func noNodeBecause(pod *Pod, nodes []Node) string {
	labelled := slices.ContainsFunc(nodes, func(n Node) bool { return matches(pod.NodeSelector, n.Labels) })
	if !labelled {
		return "no node has the labels of its nodeSelector " + selector(pod.NodeSelector)
	}
	if len(pod.NodeSelector) == 0 {
		return "it tolerates the taints of no node"
	}
	return "no node labelled " + selector(pod.NodeSelector) + " has only taints it tolerates"
}

func selector(m map[string]string) string {
	kv := make([]string, 0, len(m))
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// waitReason says what a gang that does not fit waits for, in terms of its
// largest pod, such as "needs 2 nodes with 8 free nvidia.com/gpu; largest free
// block is 4".
func (c *Cluster) waitReason(pods []Pod) string {
	gpu := c.gpuName()
	big := 0
	same := true
	for i := range pods {
		if compareSize(pods[i].Requests, pods[big].Requests) > 0 {
			big = i
		}
		if pods[i].Requests != pods[0].Requests {
			same = false
		}
	}
	r := pods[big].Requests

	// Is it GPUs that are short, or the CPU and memory beside them?
	var block int64 // largest free amount of the scarce resource on one node
	hostShort, perNode, slots := false, int64(0), int64(0)
	for n := range c.nodes {
		node := &c.nodes[n]
		if node.Unschedulable || !pods[big].admits(node) {
			continue
		}
		free := c.free[n]
		slots += max(free.Pods, 0)
		if r.GPU > 0 {
			block = max(block, free.GPU)
			hostShort = hostShort || (free.GPU >= r.GPU && !r.within(free))
		} else {
			block = max(block, free.MilliCPU)
		}
		perNode = max(perNode, r.copies(node.Allocatable))
	}
	want := freeDescription(r, gpu, hostShort)
	var short string
	switch {
	case slots < int64(len(pods))*r.Pods:
		short = "every node it may use runs as many pods as it allows (its allocatable pods)"
	case hostShort:
		short = "the nodes with those GPUs free lack the CPU or memory"
	case r.GPU > 0:
		short = fmt.Sprintf("largest free block is %d", block)
	default:
		short = "largest free block is " + resource.NewMilliQuantity(block, resource.DecimalSI).String() + " CPU"
	}

	if len(pods) == 1 {
		return fmt.Sprintf("needs a node with %s; %s", want, short)
	}
	fit := c.fitCount(pods)
	if same && perNode == 1 {
		switch {
		case fit == 1:
			short = "only 1 has that"
		case fit > 1:
			short = fmt.Sprintf("only %d have that", fit)
		}
		return fmt.Sprintf("needs %d nodes with %s; %s", len(pods), want, short)
	}
	return fmt.Sprintf("needs room for %d pods, the largest with %s; the free capacity holds %d of them; %s",
		len(pods), want, fit, short)
}

// freeDescription is "8 free nvidia.com/gpu", with the CPU and memory when
// they are what is short.
func freeDescription(r Resources, gpu string, withHost bool) string {
	if r.GPU == 0 {
		return r.describe(gpu, true) + " free"
	}
	s := fmt.Sprintf("%d free %s", r.GPU, gpu)
	if withHost {
		host := Resources{MilliCPU: r.MilliCPU, Memory: r.Memory}
		if host != (Resources{}) {
			s += " with " + host.describe(gpu, true)
		}
	}
	return s
}

// fitCount is how many of pods, largest first, fit the free capacity one by one.
func (c *Cluster) fitCount(pods []Pod) int {
	free := slices.Clone(c.free)
	order := largestFirst(pods)
	fit := 0
	for _, i := range order {
		for n := range c.nodes {
			if !c.nodes[n].Unschedulable && pods[i].Requests.within(free[n]) && pods[i].admits(&c.nodes[n]) {
				free[n] = free[n].sub(pods[i].Requests)
				fit++
				break
			}
		}
	}
	return fit
}

func (c *Cluster) gpuName() string {
	if c.GPUResource == "" {
		return "nvidia.com/gpu"
	}
	return c.GPUResource
}

func countTrue(bs []bool) int {
	n := 0
	for _, ok := range bs {
		if ok {
			n++
		}
	}
	return n
}
