package placement

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Resources is a request or a capacity in plain integers, so that packing
// thousands of pods onto thousands of nodes costs integer compares only.
type Resources struct {
	MilliCPU int64
	Memory   int64 // bytes
	GPU      int64 // whole devices of the cluster's GPU resource
	// Pods are pod slots: 1 for a pod read from its spec, a node's allocatable
	// "pods" (the kubelet's maxPods, 110 by default) for its capacity. Without
	// them, pods that request little would be packed onto a node past its limit.
	Pods int64
}

// unboundedPods is the pod capacity of a node that does not say (simulated
// clusters, tests): pod slots never run out there.
const unboundedPods = 1 << 40

func (r Resources) add(o Resources) Resources {
	return Resources{r.MilliCPU + o.MilliCPU, r.Memory + o.Memory, r.GPU + o.GPU, r.Pods + o.Pods}
}

func (r Resources) sub(o Resources) Resources {
	return Resources{r.MilliCPU - o.MilliCPU, r.Memory - o.Memory, r.GPU - o.GPU, r.Pods - o.Pods}
}

// within reports whether r fits in free on every dimension.
func (r Resources) within(free Resources) bool {
	return r.MilliCPU <= free.MilliCPU && r.Memory <= free.Memory && r.GPU <= free.GPU && r.Pods <= free.Pods
}

// copies is how many requests r fit in free; a request of nothing fits without bound.
func (r Resources) copies(free Resources) int64 {
	n := int64(1 << 62)
	for _, d := range [...][2]int64{{r.MilliCPU, free.MilliCPU}, {r.Memory, free.Memory}, {r.GPU, free.GPU}, {r.Pods, free.Pods}} {
		if d[0] > 0 {
			n = min(n, max(d[1], 0)/d[0])
		}
	}
	return n
}

// describe renders r for people, such as "8 nvidia.com/gpu, 32 CPU and 128Gi memory".
// withHost adds CPU and memory, which are noise when the GPUs are what is short.
func (r Resources) describe(gpuResource string, withHost bool) string {
	var parts []string
	if r.GPU > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", r.GPU, gpuResource))
	}
	if withHost || r.GPU == 0 {
		if r.MilliCPU > 0 {
			parts = append(parts, resource.NewMilliQuantity(r.MilliCPU, resource.DecimalSI).String()+" CPU")
		}
		if r.Memory > 0 {
			parts = append(parts, resource.NewQuantity(r.Memory, resource.BinarySI).String()+" memory")
		}
	}
	switch len(parts) {
	case 0:
		return "no resources"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// Node is what placement needs to know of one node.
type Node struct {
	Name        string
	Labels      map[string]string
	Taints      []corev1.Taint
	Allocatable Resources
	// Unschedulable nodes never receive pods but still count when Kiln decides
	// whether a gang could ever fit. Callers may add the nodes an autoscaling
	// pool can still grow this way, so a gang that fits what the pools can grow
	// to waits instead of being refused.
	Unschedulable bool
}

// Pod is one member of a gang: what it requests and where it may run.
type Pod struct {
	Requests     Resources
	NodeSelector map[string]string
	Tolerations  []corev1.Toleration
	// OwnNode marks a pod that is one node of a multi-node shape (a TrainingJob's rank): no
	// other pod of its gang may share its node, however little the pods request.
	OwnNode bool
}

// admits reports whether p may run on n at all, whatever is free there.
func (p *Pod) admits(n *Node) bool {
	if !matches(p.NodeSelector, n.Labels) {
		return false
	}
	for i := range n.Taints {
		t := &n.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		if !tolerated(p.Tolerations, t) {
			return false
		}
	}
	return true
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// tolerated follows the API's toleration rules; the numeric operators (Gt,
// Lt) are alpha and not honoured, so such a toleration tolerates nothing.
func tolerated(tols []corev1.Toleration, t *corev1.Taint) bool {
	for _, tol := range tols {
		if tol.Effect != "" && tol.Effect != t.Effect {
			continue
		}
		if tol.Key != "" && tol.Key != t.Key {
			continue
		}
		switch tol.Operator {
		case corev1.TolerationOpExists:
			return true
		case corev1.TolerationOpEqual, "":
			if tol.Key != "" && tol.Value == t.Value {
				return true
			}
		}
	}
	return false
}

// NodeFromCore reads a node's allocatable capacity, labels and taints.
func NodeFromCore(n *corev1.Node, gpuResource corev1.ResourceName) Node {
	return Node{
		Name:          n.Name,
		Labels:        n.Labels,
		Taints:        n.Spec.Taints,
		Allocatable:   nodeCapacity(n.Status.Allocatable, gpuResource),
		Unschedulable: n.Spec.Unschedulable,
	}
}

func nodeCapacity(l corev1.ResourceList, gpuResource corev1.ResourceName) Resources {
	r := fromList(l, gpuResource)
	r.Pods = unboundedPods
	if q, ok := l[corev1.ResourcePods]; ok {
		r.Pods = q.Value()
	}
	return r
}

// PodFromSpec reads what a pod (or a pod template) requests and where it may run.
func PodFromSpec(spec *corev1.PodSpec, gpuResource corev1.ResourceName) Pod {
	return Pod{
		Requests:     PodRequests(spec, gpuResource),
		NodeSelector: spec.NodeSelector,
		Tolerations:  spec.Tolerations,
	}
}

// PodRequests is what the scheduler reserves for a pod: its containers and
// sidecars, or its largest init step if that is larger, plus the runtime
// overhead. Limits stand in for missing requests, as the API's defaulting
// does, so templates read the same as the pods made from them.
func PodRequests(spec *corev1.PodSpec, gpuResource corev1.ResourceName) Resources {
	var sum, sidecars, peak Resources
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		r := containerRequests(c, gpuResource)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars = sidecars.add(r)
			continue
		}
		peak = maxOf(peak, sidecars.add(r))
	}
	for i := range spec.Containers {
		sum = sum.add(containerRequests(&spec.Containers[i], gpuResource))
	}
	r := maxOf(sum.add(sidecars), peak).add(fromList(spec.Overhead, gpuResource))
	r.Pods = 1
	return r
}

func containerRequests(c *corev1.Container, gpuResource corev1.ResourceName) Resources {
	list := corev1.ResourceList{}
	for k, v := range c.Resources.Limits {
		list[k] = v
	}
	for k, v := range c.Resources.Requests {
		list[k] = v
	}
	return fromList(list, gpuResource)
}

func fromList(l corev1.ResourceList, gpuResource corev1.ResourceName) Resources {
	var r Resources
	if q, ok := l[corev1.ResourceCPU]; ok {
		r.MilliCPU = q.MilliValue()
	}
	if q, ok := l[corev1.ResourceMemory]; ok {
		r.Memory = q.Value()
	}
	if q, ok := l[gpuResource]; ok {
		r.GPU = q.Value()
	}
	return r
}

func maxOf(a, b Resources) Resources {
	return Resources{max(a.MilliCPU, b.MilliCPU), max(a.Memory, b.Memory), max(a.GPU, b.GPU), max(a.Pods, b.Pods)}
}
