package trainingjob

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// pod builds a worker pod with the given completion index ("" for none) that
// last changed at t0+after.
func pod(name, index string, phase corev1.PodPhase, after time.Duration) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.PodStatus{
			Phase:      phase,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, LastTransitionTime: metav1.NewTime(t0.Add(after))}},
		},
	}
	if index != "" {
		p.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: index}
	}
	return p
}

func exited(p corev1.Pod, container string, code int32, reason string) corev1.Pod {
	p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
		Name:  container,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}},
	})
	return p
}

func TestFirstFailed(t *testing.T) {
	tests := []struct {
		name string
		pods []corev1.Pod
		want string // "" for none
	}{
		{name: "none failed", pods: []corev1.Pod{pod("a", "0", corev1.PodRunning, 0), pod("b", "1", corev1.PodSucceeded, 0)}},
		{
			name: "the earliest failure is the cause",
			pods: []corev1.Pod{pod("late", "0", corev1.PodFailed, 5*time.Second), pod("early", "1", corev1.PodFailed, time.Second), pod("ok", "2", corev1.PodRunning, 0)},
			want: "early",
		},
		{
			name: "a tie goes to the lower index",
			pods: []corev1.Pod{pod("three", "3", corev1.PodFailed, time.Second), pod("one", "1", corev1.PodFailed, time.Second), pod("noindex", "", corev1.PodFailed, time.Second)},
			want: "one",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if p := firstFailed(tt.pods); p != nil {
				got = p.Name
			}
			if got != tt.want {
				t.Errorf("firstFailed = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	failed := pod("tj-a1-1-xyz", "1", corev1.PodFailed, 0)
	evicted := failed
	evicted.Status.Reason, evicted.Status.Message = "Evicted", "The node was low on resource: memory."
	fetchFailed := failed
	fetchFailed.Status.InitContainerStatuses = []corev1.ContainerStatus{{
		Name:  "kiln-fetch-shards",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}},
	}}

	tests := []struct {
		name string
		pod  corev1.Pod
		want failure
	}{
		{
			name: "training container exit code",
			pod:  exited(failed, "trainer", 3, "Error"),
			want: failure{index: ptr.To[int32](1), reason: "Error", what: "worker 1 exited with code 3 (Error)", pod: "tj-a1-1-xyz"},
		},
		{
			name: "the training container before a sidecar",
			pod:  exited(exited(failed, "sidecar", 1, "Error"), "trainer", 137, "OOMKilled"),
			want: failure{index: ptr.To[int32](1), reason: "OOMKilled", what: "worker 1 exited with code 137 (OOMKilled): it ran out of memory; raise spec.resources.memory", pod: "tj-a1-1-xyz"},
		},
		{
			name: "no reason given",
			pod:  exited(failed, "trainer", 1, ""),
			want: failure{index: ptr.To[int32](1), reason: "Error", what: "worker 1 exited with code 1 (Error)", pod: "tj-a1-1-xyz"},
		},
		{
			name: "a data fetch step",
			pod:  fetchFailed,
			want: failure{index: ptr.To[int32](1), reason: "Error", what: "the kiln-fetch-shards step of worker 1 exited with code 2 (Error)", pod: "tj-a1-1-xyz"},
		},
		{
			name: "an evicted pod",
			pod:  evicted,
			want: failure{index: ptr.To[int32](1), reason: "Evicted", what: "worker 1 failed (Evicted: The node was low on resource: memory.)", pod: "tj-a1-1-xyz"},
		},
		{
			name: "no index",
			pod:  exited(pod("p", "", corev1.PodFailed, 0), "trainer", 3, "Error"),
			want: failure{reason: "Error", what: "a worker exited with code 3 (Error)", pod: "p"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describe(&tt.pod)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(failure{})); diff != "" {
				t.Errorf("describe (-want +got):\n%s", diff)
			}
		})
	}
}
