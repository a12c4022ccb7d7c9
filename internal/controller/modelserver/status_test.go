package modelserver

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render/serving"
)

func TestPodProblem(t *testing.T) {
	waiting := func(name, reason string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: name, Image: "srv:1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "details"}}}
	}
	pod := func(init []corev1.ContainerStatus, main []corev1.ContainerStatus, conds ...corev1.PodCondition) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{InitContainerStatuses: init, ContainerStatuses: main, Conditions: conds}}
	}
	crashed := waiting(serving.ContainerName, "CrashLoopBackOff")
	crashed.RestartCount = 4
	crashed.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}
	fetchFailed := corev1.ContainerStatus{Name: serving.FetchContainerName, State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "NoSuchKey: model/ not found\n"}}}
	for _, tc := range []struct {
		name       string
		pods       []corev1.Pod
		wantReason string
		wantMsg    string
	}{
		{name: "healthy", pods: []corev1.Pod{pod(nil, []corev1.ContainerStatus{{Name: serving.ContainerName}})}},
		{name: "image pull", pods: []corev1.Pod{pod(nil, []corev1.ContainerStatus{waiting(serving.ContainerName, "ImagePullBackOff")})},
			wantReason: v1alpha1.ReasonImagePullFailed, wantMsg: "pod p: container server cannot pull image srv:1: ImagePullBackOff details"},
		{name: "crash loop", pods: []corev1.Pod{pod(nil, []corev1.ContainerStatus{crashed})},
			wantReason: v1alpha1.ReasonCrashLoop, wantMsg: "pod p: container server keeps crashing (4 restarts); last exit code 137 (OOMKilled)"},
		{name: "download failed", pods: []corev1.Pod{pod([]corev1.ContainerStatus{fetchFailed}, nil)},
			wantReason: v1alpha1.ReasonModelDownloadFailed, wantMsg: "pod p: downloading the model failed with exit code 1: NoSuchKey: model/ not found"},
		{name: "unschedulable", pods: []corev1.Pod{pod(nil, nil, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: "0/4 nodes have 1 free nvidia.com/gpu"})},
			wantReason: v1alpha1.ReasonUnschedulable, wantMsg: "pod p: 0/4 nodes have 1 free nvidia.com/gpu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := podProblem(tc.pods)
			var want *problem
			if tc.wantReason != "" {
				want = &problem{tc.wantReason, tc.wantMsg}
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(problem{})); diff != "" {
				t.Errorf("podProblem (-want +got):\n%s", diff)
			}
		})
	}
}
