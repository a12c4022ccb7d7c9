package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/internal/webhook"
	"kiln.dev/kiln/test/framework"
)

// A plain GPU Job in a namespace labelled kiln.dev/inject=enabled runs on the tainted GPU nodes
// because the pod webhook added the toleration its author forgot; with the backdoor label the
// same pod is left as written, and cannot schedule.
func TestInjectedGPUJobRunsOnTaintedNodes(t *testing.T) {
	ctx := context.Background()
	cs := clientset(t)
	ns := namespace(t)
	nsObj, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsObj.Labels[webhook.LabelInject] = webhook.InjectEnabled
	if _, err := cs.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	job := func(name string, labels map[string]string) *batchv1.Job {
		return &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](0),
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						RestartPolicy: corev1.RestartPolicyNever,
						Containers: []corev1.Container{{Name: "main", Image: "trainer:1", Resources: corev1.ResourceRequirements{
							Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")},
						}}},
					},
				},
			},
		}
	}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job("injected", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job("as-written", map[string]string{webhook.LabelInject: "false"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, timeout, func() error {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, "injected", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if j.Status.Succeeded != 1 {
			return fmt.Errorf("job injected: %d succeeded", j.Status.Succeeded)
		}
		return nil
	})
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range pods.Items {
		job := p.Labels["job-name"]
		seen[job] = true
		tolerated := slices.ContainsFunc(p.Spec.Tolerations, func(t corev1.Toleration) bool { return t.Key == "nvidia.com/gpu" })
		_, annotated := p.Annotations[webhook.AnnotationInjected]
		if want := job == "injected"; tolerated != want || annotated != want {
			t.Errorf("pod %s of job %s: GPU toleration %v, annotation %v; want %v", p.Name, job, tolerated, annotated, want)
		}
		if job == "as-written" && p.Spec.NodeName != "" {
			t.Errorf("pod %s without the toleration was bound to %s", p.Name, p.Spec.NodeName)
		}
	}
	if !seen["injected"] || !seen["as-written"] {
		t.Errorf("pods of jobs %v, want both", seen)
	}
}
