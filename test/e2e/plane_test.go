package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/test/framework"
)

func namespace(t *testing.T) string {
	t.Helper()
	cs := clientset(t)
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

func gpuPodSpec(gpus int64, annotations map[string]string) corev1.PodTemplateSpec {
	q := *resource.NewQuantity(gpus, resource.DecimalSI)
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Annotations: annotations},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Tolerations:   []corev1.Toleration{{Key: controlplane.GPUTaintKey, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers: []corev1.Container{{
				Name: "train", Image: "example.com/train:1",
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{controlplane.GPUResource: q},
					Limits:   corev1.ResourceList{controlplane.GPUResource: q},
				},
			}},
		},
	}
}

func TestIndexedGPUJobRunsOnSimulatedGPUNodes(t *testing.T) {
	ctx := context.Background()
	cs, ns := clientset(t), namespace(t)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "two-by-four", Namespace: ns},
		Spec: batchv1.JobSpec{
			CompletionMode: ptr.To(batchv1.IndexedCompletion),
			Completions:    ptr.To[int32](2),
			Parallelism:    ptr.To[int32](2),
			BackoffLimit:   ptr.To[int32](0),
			Template:       gpuPodSpec(4, nil),
		},
	}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, func() error {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("job not complete: succeeded=%d failed=%d", j.Status.Succeeded, j.Status.Failed)
	})
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job.Name})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Fatalf("want 2 pods, got %d", len(pods.Items))
	}
	for _, p := range pods.Items {
		node, err := cs.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("pod %s on node %q: %v", p.Name, p.Spec.NodeName, err)
		}
		if node.Labels["nvidia.com/gpu.present"] != "true" || p.Status.Phase != corev1.PodSucceeded {
			t.Errorf("pod %s: phase %s on node %s with labels %v", p.Name, p.Status.Phase, node.Name, node.Labels)
		}
	}
}

func TestPodLargerThanAnyNodeStaysPendingWithTheSchedulersReason(t *testing.T) {
	ctx := context.Background()
	cs, ns := clientset(t), namespace(t)
	tmpl := gpuPodSpec(16, nil)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "too-big", Namespace: ns}, Spec: tmpl.Spec}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				if !strings.Contains(c.Message, "Insufficient nvidia.com/gpu") {
					return fmt.Errorf("unschedulable for another reason: %s", c.Message)
				}
				return nil
			}
		}
		return fmt.Errorf("pod %s is %s without an Unschedulable condition yet", p.Name, p.Status.Phase)
	})
	p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending {
		t.Fatalf("pod should stay Pending and unbound, is %s on %q", p.Status.Phase, p.Spec.NodeName)
	}
}

func TestSimulatedPodFailureCarriesItsExitCode(t *testing.T) {
	ctx := context.Background()
	cs, ns := clientset(t), namespace(t)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "fails", Namespace: ns},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template:     gpuPodSpec(1, map[string]string{"sim.kiln.dev/exit-code": "3", "sim.kiln.dev/run-time": "500ms"}),
		},
	}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, func() error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job.Name})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			for _, s := range p.Status.ContainerStatuses {
				if term := s.State.Terminated; term != nil && p.Status.Phase == corev1.PodFailed {
					if term.ExitCode != 3 {
						return fmt.Errorf("exit code %d, want 3", term.ExitCode)
					}
					return nil
				}
			}
		}
		return fmt.Errorf("no failed pod yet")
	})
}
