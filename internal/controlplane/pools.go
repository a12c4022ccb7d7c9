package controlplane

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// NodePool is a group of identical simulated nodes.
type NodePool struct {
	// Name prefixes node names and is the value of the PoolLabel.
	Name string
	// Count is how many nodes the pool has.
	Count int
	// GPUs per node; 0 makes CPU-only nodes.
	GPUs int
	// GPUProduct is the nvidia.com/gpu.product label of GPU nodes.
	GPUProduct string
	// MaxPods is each node's pod capacity (default 110, the kubelet's); benchmarks raise it
	// to pack thousands of simulated pods onto few nodes.
	MaxPods int
}

// Labels and values the simulated nodes carry, as GPU feature discovery and cloud providers set them.
const (
	PoolLabel          = "kiln.dev/pool"
	GPUResource        = corev1.ResourceName("nvidia.com/gpu")
	GPUTaintKey        = "nvidia.com/gpu"
	DefaultGPUProduct  = "NVIDIA-A100-SXM4-80GB"
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	cudaDriverMajor    = "570"
)

// DefaultPools is the local Kiln's cluster when no pools are given: two 8-GPU nodes, two 4-GPU
// nodes and a CPU node, enough to show packing and multi-node shapes.
const DefaultPools = "a100=2x8,l4=2x4@NVIDIA-L4,cpu=1x0"

// DefaultPoolsWithRealNode are the simulated pools beside a real node: the GPU pools only, so
// CPU work lands on the real node and really runs.
const DefaultPoolsWithRealNode = "a100=2x8,l4=2x4@NVIDIA-L4"

var poolRE = regexp.MustCompile(`^(?:([a-z0-9]([-a-z0-9]*[a-z0-9])?)=)?([0-9]+)x([0-9]+)(?:@([A-Za-z0-9][-A-Za-z0-9_.]*))?$`)

// ParsePools reads a comma-separated list of [NAME=]COUNTxGPUS[@PRODUCT] pool specs.
func ParsePools(spec string) ([]NodePool, error) {
	var pools []NodePool
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		m := poolRE.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("node pool %q: want [NAME=]COUNTxGPUS[@PRODUCT], e.g. a100=4x8@NVIDIA-A100-SXM4-80GB or cpu=2x0", part)
		}
		count, err := strconv.Atoi(m[3])
		if err != nil || count < 1 || count > 500 {
			return nil, fmt.Errorf("node pool %q: node count must be between 1 and 500", part)
		}
		gpus, err := strconv.Atoi(m[4])
		if err != nil || gpus > 64 {
			return nil, fmt.Errorf("node pool %q: GPUs per node must be between 0 and 64", part)
		}
		p := NodePool{Name: m[1], Count: count, GPUs: gpus, GPUProduct: m[5]}
		if p.Name == "" {
			p.Name = fmt.Sprintf("gpu%d", gpus)
			if gpus == 0 {
				p.Name = "cpu"
			}
		}
		if gpus > 0 && p.GPUProduct == "" {
			p.GPUProduct = DefaultGPUProduct
		}
		if gpus == 0 && p.GPUProduct != "" {
			return nil, fmt.Errorf("node pool %q: a GPU product needs GPUs per node above 0", part)
		}
		if errs := validation.IsDNS1123Label(fmt.Sprintf("%s-%d", p.Name, count-1)); len(errs) > 0 {
			return nil, fmt.Errorf("node pool %q: name makes invalid node names: %s", part, strings.Join(errs, "; "))
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("node pool %q: pool name %q used twice", part, p.Name)
		}
		seen[p.Name] = true
		pools = append(pools, p)
	}
	if len(pools) == 0 {
		return nil, fmt.Errorf("no node pools in %q: want e.g. %s", spec, DefaultPools)
	}
	return pools, nil
}

// String gives the pool back in ParsePools' syntax.
func (p NodePool) String() string {
	s := fmt.Sprintf("%s=%dx%d", p.Name, p.Count, p.GPUs)
	if p.GPUProduct != "" {
		s += "@" + p.GPUProduct
	}
	return s
}

// Nodes renders the pool's Node objects with the capacity, labels and taints a real GPU node has.
func (p NodePool) Nodes() []corev1.Node {
	// CPU and memory scale with GPUs as on common cloud GPU shapes (12 vCPUs, 128 GiB per GPU).
	cpu, mem := int64(16), int64(64)
	instance := "sim-cpu-16"
	if p.GPUs > 0 {
		cpu, mem = int64(12*p.GPUs), int64(128*p.GPUs)
		instance = fmt.Sprintf("sim-%dx-%s", p.GPUs, strings.ToLower(p.GPUProduct))
		if len(instance) > 63 {
			instance = instance[:63]
		}
	}
	resources := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(cpu, resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(mem<<30, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(int64(max(p.MaxPods, 110)), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	labels := map[string]string{
		PoolLabel:                          p.Name,
		"node.kubernetes.io/instance-type": instance,
		"kubernetes.io/os":                 "linux",
		"kubernetes.io/arch":               "amd64",
		"type":                             "kwok",
	}
	var taints []corev1.Taint
	if p.GPUs > 0 {
		resources[GPUResource] = *resource.NewQuantity(int64(p.GPUs), resource.DecimalSI)
		labels["nvidia.com/gpu.present"] = "true"
		labels["nvidia.com/gpu.product"] = p.GPUProduct
		labels["nvidia.com/gpu.count"] = strconv.Itoa(p.GPUs)
		labels["nvidia.com/cuda.driver.major"] = cudaDriverMajor
		taints = []corev1.Taint{{Key: GPUTaintKey, Value: "present", Effect: corev1.TaintEffectNoSchedule}}
	}
	nodes := make([]corev1.Node, p.Count)
	for i := range nodes {
		name := fmt.Sprintf("%s-%d", p.Name, i)
		l := map[string]string{"kubernetes.io/hostname": name}
		for k, v := range labels {
			l[k] = v
		}
		nodes[i] = corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Labels:      l,
				Annotations: map[string]string{kwokNodeAnnotation: "fake"},
			},
			Spec:   corev1.NodeSpec{Taints: taints},
			Status: corev1.NodeStatus{Capacity: resources.DeepCopy(), Allocatable: resources.DeepCopy()},
		}
	}
	return nodes
}
