package cli

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRealNodes(t *testing.T) {
	node := func(name string, labels, annotations map[string]string, ready corev1.ConditionStatus) corev1.Node {
		return corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
			Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}},
		}
	}
	tests := []struct {
		name  string
		nodes []corev1.Node
		want  []string
	}{
		{"only simulated nodes", []corev1.Node{
			node("a100-0", map[string]string{"type": "kwok"}, nil, corev1.ConditionTrue),
			node("cpu-0", nil, map[string]string{"kwok.x-k8s.io/node": "fake"}, corev1.ConditionTrue),
		}, nil},
		{"a real node beside them", []corev1.Node{
			node("a100-0", map[string]string{"type": "kwok"}, nil, corev1.ConditionTrue),
			node("kiln-node", map[string]string{"kiln.dev/pool": "node"}, nil, corev1.ConditionTrue),
		}, []string{"kiln-node"}},
		{"a real node not ready yet", []corev1.Node{
			node("kiln-node", nil, nil, corev1.ConditionFalse),
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, realNodes(tt.nodes)); diff != "" {
				t.Errorf("realNodes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLastMetric(t *testing.T) {
	tests := []struct {
		name   string
		log    string
		metric string
		want   float64
		found  bool
	}{
		{"rank-prefixed line", "[rank 0] training SVC(C=1, gamma=0.01)\n[rank 0] kiln-metric step=1 accuracy=0.7956\n", "accuracy", 0.7956, true},
		{"the last report wins", "kiln-metric step=1 loss=0.9\nkiln-metric step=2 loss=0.4 accuracy=0.8\n", "loss", 0.4, true},
		{"another metric only", "kiln-metric step=1 loss=0.9\n", "accuracy", 0, false},
		{"not a number", "kiln-metric accuracy=high\n", "accuracy", 0, false},
		{"no metric line", "accuracy=0.9\n", "accuracy", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found := lastMetric(tt.log, tt.metric)
			if got != tt.want || found != tt.found {
				t.Errorf("lastMetric = %v, %v; want %v, %v", got, found, tt.want, tt.found)
			}
		})
	}
}

func TestFinalLosses(t *testing.T) {
	log := `[rank 0] rank 0 of 2: rendezvous at ddp-a0-0.ddp-a0:29500
[rank 0] [default0]:final loss 0.012345 (rank 0, 3.1s)
[rank 1] epoch 20 loss 0.013
[rank 1] [default0]:final loss 0.012345 (rank 1, 3.0s)
final loss 9 (no rank prefix: not a worker's line)
`
	want := []string{"rank 0: final loss 0.012345", "rank 1: final loss 0.012345"}
	if diff := cmp.Diff(want, finalLosses(log)); diff != "" {
		t.Errorf("finalLosses (-want +got):\n%s", diff)
	}
}
