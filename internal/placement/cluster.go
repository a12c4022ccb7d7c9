package placement

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Cluster is the capacity of a set of nodes and what holds it: pods Kiln does
// not admit (Use) and the gangs it has admitted (Hold). It keeps no state of
// its own worth saving: a manager rebuilds it from the API server (Snapshot)
// before every admission pass, so a restart neither loses nor double-books.
type Cluster struct {
	// GPUResource names the GPU resource in reasons; "" means nvidia.com/gpu.
	GPUResource string

	nodes []Node
	free  []Resources // allocatable minus everything below; negative when overcommitted
	other []Resources // used by pods Kiln does not admit
	// largest is the most of each resource one node has.
	largest Resources
	byName  map[string]int
	held    map[string][]hold
}

type hold struct {
	node int
	req  Resources
}

// NewCluster starts with every node empty. Ties between equally good nodes go
// to the one given first.
func NewCluster(nodes []Node) *Cluster {
	c := &Cluster{
		nodes:  nodes,
		free:   make([]Resources, len(nodes)),
		other:  make([]Resources, len(nodes)),
		byName: make(map[string]int, len(nodes)),
		held:   map[string][]hold{},
	}
	for i := range nodes {
		c.free[i] = nodes[i].Allocatable
		c.largest = maxOf(c.largest, nodes[i].Allocatable)
		c.byName[nodes[i].Name] = i
	}
	return c
}

// Use records capacity taken on a node by a pod Kiln does not admit (any
// bound, unfinished pod of another workload).
func (c *Cluster) Use(node string, r Resources) error {
	i, ok := c.byName[node]
	if !ok {
		return fmt.Errorf("node %q is not in the cluster", node)
	}
	c.free[i] = c.free[i].sub(r)
	c.other[i] = c.other[i].add(r)
	return nil
}

// Hold records an admitted gang: pods[i] runs on nodes[i]. Admit calls it for
// the gangs it admits; a rebuilt Cluster calls it for every gang admitted
// earlier, whether or not its pods exist yet.
func (c *Cluster) Hold(gang string, pods []Pod, nodes []string) error {
	if _, ok := c.held[gang]; ok {
		return fmt.Errorf("gang %s is already held", gang)
	}
	if len(pods) != len(nodes) {
		return fmt.Errorf("gang %s has %d pods but %d nodes", gang, len(pods), len(nodes))
	}
	hs := make([]hold, len(pods))
	for i := range pods {
		n, ok := c.byName[nodes[i]]
		if !ok {
			return fmt.Errorf("gang %s: pod %d is placed on node %q, which is not in the cluster", gang, i, nodes[i])
		}
		hs[i] = hold{node: n, req: pods[i].Requests}
	}
	for _, h := range hs {
		c.free[h.node] = c.free[h.node].sub(h.req)
	}
	c.held[gang] = hs
	return nil
}

// Release frees what a finished, failed or deleted gang held; its capacity is
// usable by the next Admit at once. Releasing an unknown gang does nothing.
func (c *Cluster) Release(gang string) {
	for _, h := range c.held[gang] {
		c.free[h.node] = c.free[h.node].add(h.req)
	}
	delete(c.held, gang)
}

// Holds reports whether gang is admitted and, if so, the node of each pod.
func (c *Cluster) Holds(gang string) ([]string, bool) {
	hs, ok := c.held[gang]
	if !ok {
		return nil, false
	}
	nodes := make([]string, len(hs))
	for i, h := range hs {
		nodes[i] = c.nodes[h.node].Name
	}
	return nodes, true
}

// Free is the capacity of a node nothing holds.
func (c *Cluster) Free(node string) (Resources, bool) {
	i, ok := c.byName[node]
	if !ok {
		return Resources{}, false
	}
	return c.free[i], true
}

// Held is a gang admitted earlier, as recorded in the cluster (the placement
// annotation of its Job): its pods and the node each is pinned to.
type Held struct {
	Gang  string
	Pods  []Pod
	Nodes []string
}

// Snapshot is what the API server shows, from which a Cluster is rebuilt.
type Snapshot struct {
	Nodes []corev1.Node
	// Pods are all pods of the cluster; finished and unbound ones are skipped.
	Pods []corev1.Pod
	// Held lists the gangs Kiln admitted and that have not finished.
	Held []Held
	// GangOf names the gang a pod belongs to, "" for none. Pods of held gangs
	// count through Held, so a gang whose pods are half created is neither
	// counted twice nor forgotten.
	GangOf      func(*corev1.Pod) string
	GPUResource corev1.ResourceName
}

// Cluster rebuilds the capacity picture. Nodes come in name order, so ties
// break the same way on every pass. Problems (a pod or a held gang on a node
// that is gone) are returned together with the Cluster built from the rest.
func (s Snapshot) Cluster() (*Cluster, error) {
	nodes := make([]Node, 0, len(s.Nodes))
	for i := range s.Nodes {
		nodes = append(nodes, NodeFromCore(&s.Nodes[i], s.GPUResource))
	}
	slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	c := NewCluster(nodes)
	c.GPUResource = string(s.GPUResource)
	held := make(map[string]bool, len(s.Held))
	for _, h := range s.Held {
		held[h.Gang] = true
	}
	var errs []error
	for i := range s.Pods {
		p := &s.Pods[i]
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if s.GangOf != nil && held[s.GangOf(p)] {
			continue
		}
		if err := c.Use(p.Spec.NodeName, PodRequests(&p.Spec, s.GPUResource)); err != nil {
			errs = append(errs, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err))
		}
	}
	for _, h := range s.Held {
		if err := c.Hold(h.Gang, h.Pods, h.Nodes); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

// EncodePlacement is the annotation value recording an admitted gang's
// nodes, index by index: "node-a,node-a,node-b".
func EncodePlacement(nodes []string) string { return strings.Join(nodes, ",") }

// DecodePlacement reads EncodePlacement's value.
func DecodePlacement(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
