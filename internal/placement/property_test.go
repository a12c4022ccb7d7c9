package placement

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// mixNodes makes the nodes of a mix, given as GPUs per node → count.
func mixNodes(mix [][2]int) []corev1.Node {
	var nodes []corev1.Node
	for _, m := range mix {
		for i := range m[1] {
			alloc := corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("96"),
				corev1.ResourceMemory: resource.MustParse("1Ti"),
				corev1.ResourcePods:   resource.MustParse("110"),
			}
			if m[0] > 0 {
				alloc[gpu] = *resource.NewQuantity(int64(m[0]), resource.DecimalSI)
			}
			nodes = append(nodes, corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%dx%d-%d", m[0], m[1], i),
					Labels: map[string]string{"node.kubernetes.io/instance-type": fmt.Sprintf("gpu%d", m[0])}},
				Status: corev1.NodeStatus{Allocatable: alloc},
			})
		}
	}
	return nodes
}

// admitsOnEmpty says whether gang admission admits the shape on the empty cluster,
// with the pods the renderer makes: Nodes pods of GPUsPerNode GPUs, marked as
// the admission controller marks them.
func admitsOnEmpty(t *testing.T, nodes []corev1.Node, s Shape) Decision {
	t.Helper()
	var pn []Node
	for i := range nodes {
		pn = append(pn, NodeFromCore(&nodes[i], gpu))
	}
	pod := Pod{Requests: Resources{GPU: int64(s.GPUsPerNode), MilliCPU: 1000, Memory: 1 << 30, Pods: 1}, OwnNode: OwnsNode(int64(s.GPUsPerNode))}
	return Admit(NewCluster(pn), []Gang{{ID: "job", Pods: pods(int(s.Nodes), pod)}}, nil)[0]
}

var countThatWorks = regexp.MustCompile(`(\d+) \((\d+) nodes?\)`)

// The one rule for shapes: whatever Choose picks, gang admission admits on an
// empty cluster; whatever it refuses, it names counts that work (and they do).
func TestChooseAndAdmitAgree(t *testing.T) {
	mixes := map[string][][2]int{
		"uniform 8-GPU": {{8, 4}},
		"uniform 4-GPU": {{4, 4}},
		"8 + 4":         {{8, 2}, {4, 2}},
		"8 + 2 + 1":     {{8, 1}, {2, 2}, {1, 4}},
		"CPU only":      {{0, 3}},
	}
	for name, mix := range mixes {
		t.Run(name, func(t *testing.T) {
			nodes := mixNodes(mix)
			shapes := NodeShapesFromNodes(nodes, gpu)
			for gpus := int32(1); gpus <= 64; gpus++ {
				s, err := Choose(gpus, gpu, shapes)
				if err == nil {
					if d := admitsOnEmpty(t, nodes, s); d.State != Admitted {
						t.Errorf("%d GPUs: Choose picked %s but gang admission says %s: %s", gpus, s.Summary(), d.State, d.Reason)
					}
					continue
				}
				if len(shapes) == 0 {
					// No node has a GPU: no count works, and the error says so.
					if want := "no schedulable node offers " + gpu; !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(err.Error()) {
						t.Errorf("%d GPUs on CPU nodes: %v, want %q", gpus, err, want)
					}
					continue
				}
				named := countThatWorks.FindAllStringSubmatch(err.Error(), -1)
				if len(named) == 0 {
					t.Errorf("%d GPUs refused without naming counts that work: %v", gpus, err)
				}
				for _, m := range named {
					g, _ := strconv.Atoi(m[1])
					n, _ := strconv.Atoi(m[2])
					alt, err := Choose(int32(g), gpu, shapes)
					if err != nil || alt.Nodes != int32(n) {
						t.Errorf("%d GPUs: the refusal names %s, but Choose(%d) = %v, %v", gpus, m[0], g, alt.Summary(), err)
						continue
					}
					if d := admitsOnEmpty(t, nodes, alt); d.State != Admitted {
						t.Errorf("%d GPUs: the refusal names %s, which gang admission does not admit: %s", gpus, m[0], d.Reason)
					}
				}
			}
		})
	}
}
