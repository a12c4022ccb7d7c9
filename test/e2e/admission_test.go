package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/placement"
	"kiln.dev/kiln/test/framework"
)

// gpuJob asks for gpus GPUs in all; Kiln shapes it (16 GPUs are 2 pods of 8 here).
func gpuJob(ns, name string, gpus int32) *v1alpha1.TrainingJob {
	tj := trainingJob(ns, name)
	tj.Spec.Resources.GPUs = gpus
	return tj
}

// placed reads the nodes Kiln placed a Job's indexes on; nil Job when it is gone.
func placed(t *testing.T, c client.Client, ns, job string) (*batchv1.Job, []string) {
	t.Helper()
	j := &batchv1.Job{}
	err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: job}, j)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return j, placement.DecodePlacement(j.Annotations[v1alpha1.AnnotationPlacement])
}

func holdsNode(p *corev1.Pod) bool {
	return p.Spec.NodeName != "" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// The cluster has 24 GPUs: two nodes of 8 and two of 4. Two jobs of 16 GPUs (2 pods of 8) cannot
// run together: the second waits, says why, and starts once the first's capacity is free, whether
// it finished or was deleted. At every poll no pod of the second holds a node while one of the
// first does, and every pod that holds a node is on a node its Job's placement names, one each.
func TestSixteenGPUJobsTakeTurnsNeverHalfStarted(t *testing.T) {
	tests := []struct {
		name        string
		runTime     string
		deleteFirst bool
	}{
		{name: "the first finishes", runTime: "6s"},
		{name: "the first is deleted", runTime: "1h", deleteFirst: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c, ns, cs := kilnClient(t), namespace(t), clientset(t)
			first := withAnnotations(gpuJob(ns, "first", 16), simRunTime, tt.runTime)
			second := gpuJob(ns, "second", 16)
			create(t, c, first)
			waitFor(t, c, first, inState(v1alpha1.StateRunning))
			create(t, c, second)

			var waited, deleted bool
			framework.Eventually(t, timeout, func() error {
				// One list: both gangs' pods as of one instant.
				pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return err
				}
				holding := map[string]int{}
				perNode := map[string]int{}
				for _, p := range pods.Items {
					if !holdsNode(&p) {
						continue
					}
					holding[p.Labels[v1alpha1.LabelTrainingJob]]++
					// Read after the pods: a Job's placement is written before its pods exist.
					job, nodes := placed(t, c, ns, p.Labels[batchv1.JobNameLabel])
					if job == nil {
						continue // deleted, its pods on their way out
					}
					if ptr.Deref(job.Spec.Suspend, false) || !slices.Contains(nodes, p.Spec.NodeName) {
						t.Fatalf("pod %s holds node %s, but its Job (suspend %v) placed the gang on %v",
							p.Name, p.Spec.NodeName, job.Spec.Suspend, nodes)
					}
					if perNode[job.Name+"/"+p.Spec.NodeName]++; perNode[job.Name+"/"+p.Spec.NodeName] > 1 {
						t.Fatalf("two workers of %s on node %s", job.Name, p.Spec.NodeName)
					}
				}
				if holding["first"] > 0 && holding["second"] > 0 {
					t.Fatalf("both gangs hold nodes at once: %v", holding)
				}

				got := &v1alpha1.TrainingJob{}
				if err := c.Get(ctx, client.ObjectKeyFromObject(second), got); err != nil {
					return err
				}
				if got.Status.State == v1alpha1.StateQueued {
					cond := apimeta.FindStatusCondition(got.Status.Conditions, v1alpha1.TrainingJobAdmitted)
					if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonWaitingForCapacity ||
						!strings.Contains(cond.Message, "needs 2 nodes with 8 free nvidia.com/gpu") {
						t.Fatalf("queued without saying what it waits for: %s", conditions(got))
					}
					waited = true
				}
				if waited && tt.deleteFirst && !deleted {
					if err := c.Delete(ctx, first); err != nil {
						t.Fatal(err)
					}
					deleted = true
				}
				if got.Status.State != v1alpha1.StateSucceeded {
					return fmt.Errorf("second is %s (%s); pods holding nodes: %v", got.Status.State, conditions(got), holding)
				}
				return nil
			})
			if !waited {
				t.Error("the second job never showed as queued")
			}
			got := waitFor(t, c, second, inState(v1alpha1.StateSucceeded))
			if admitted := wantCondition(t, got, v1alpha1.TrainingJobAdmitted, metav1.ConditionTrue, v1alpha1.ReasonPlaced); !strings.Contains(admitted.Message, "a100-") {
				t.Errorf("Admitted message %q does not name the nodes", admitted.Message)
			}
			// One for Admitted, one for Suspended; the reason's changes while it waits are not news.
			if notes := events(t, ns, second.Name, v1alpha1.ReasonWaitingForCapacity); len(notes) == 0 || len(notes) > 2 {
				t.Errorf("want a WaitingForCapacity Event per condition, got %q", notes)
			}
			if !tt.deleteFirst {
				waitFor(t, c, first, inState(v1alpha1.StateSucceeded))
			}
		})
	}
}

// Small jobs fill partly used nodes first, so whole nodes stay free for big ones. Both jobs are
// kept to the pool of 8-GPU nodes, so the choice is exactly that: the node a 4-GPU job half uses,
// or an empty one.
func TestOneGPUJobLandsOnAPartlyUsedNodeNotAnEmptyOne(t *testing.T) {
	c, ns := kilnClient(t), namespace(t)
	a100 := map[string]string{controlplane.PoolLabel: "a100"}
	half := withAnnotations(gpuJob(ns, "half", 4), simRunTime, "6s")
	half.Spec.PodTemplate.NodeSelector = a100
	create(t, c, half)
	waitFor(t, c, half, inState(v1alpha1.StateRunning))
	halfPods := podsOf(t, ns, "half-a0")
	if len(halfPods) != 1 || halfPods[0].Spec.NodeName == "" {
		t.Fatalf("want the 4-GPU job's pod on a node, got %d pods", len(halfPods))
	}
	used := halfPods[0].Spec.NodeName

	one := withAnnotations(gpuJob(ns, "one", 1), simRunTime, "2s")
	one.Spec.PodTemplate.NodeSelector = a100
	create(t, c, one)
	waitFor(t, c, one, inState(v1alpha1.StateSucceeded))
	onePods := podsOf(t, ns, "one-a0")
	if len(onePods) != 1 || onePods[0].Spec.NodeName != used {
		node := ""
		if len(onePods) == 1 {
			node = onePods[0].Spec.NodeName
		}
		t.Errorf("the 1-GPU job ran on %q; want %s, the 8-GPU node the 4-GPU job half uses", node, used)
	}
	waitFor(t, c, half, inState(v1alpha1.StateSucceeded))
}

// A job that could not run even on the empty cluster is refused with a message that says why,
// starts nothing, and does not hold up the jobs behind it.
func TestJobsLargerThanTheClusterAreRefused(t *testing.T) {
	c, ns := kilnClient(t), namespace(t)
	admittedFalse := func(tj *v1alpha1.TrainingJob) error {
		if c := apimeta.FindStatusCondition(tj.Status.Conditions, v1alpha1.TrainingJobAdmitted); c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("not refused yet: %s", conditions(tj))
		}
		return nil
	}

	// More GPUs than all nodes have: no shape holds it, so no Job is made.
	huge := gpuJob(ns, "huge", 32)
	create(t, c, huge)
	got := waitFor(t, c, huge, admittedFalse)
	cond := wantCondition(t, got, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonNoFittingShape)
	if !strings.Contains(cond.Message, "needs 32 × nvidia.com/gpu but the schedulable nodes have 24 in all") {
		t.Errorf("message %q does not compare the job with the cluster", cond.Message)
	}

	// Each worker needs more CPU than any node has: shaped (2 × 8 GPUs), but never admitted.
	wide := gpuJob(ns, "wide", 16)
	wide.Spec.Resources.CPU = ptr.To(resource.MustParse("13"))
	create(t, c, wide)
	got = waitFor(t, c, wide, admittedFalse)
	cond = wantCondition(t, got, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonRefused)
	for _, want := range []string{"requests 8 nvidia.com/gpu and 104 CPU", "no node it may run on has that much allocatable", "the largest offer 8 nvidia.com/gpu, 96 CPU"} {
		if !strings.Contains(cond.Message, want) {
			t.Errorf("message %q lacks %q", cond.Message, want)
		}
	}
	if got.Status.State != v1alpha1.StatePending {
		t.Errorf("state %s, want Pending", got.Status.State)
	}
	framework.Eventually(t, timeout, func() error {
		if len(events(t, ns, wide.Name, v1alpha1.ReasonRefused)) == 0 {
			return errors.New("no Refused Event yet")
		}
		return nil
	})

	// Behind it in the queue, a job that fits starts.
	small := gpuJob(ns, "small", 1)
	create(t, c, small)
	waitFor(t, c, small, inState(v1alpha1.StateSucceeded))

	job, nodes := placed(t, c, ns, "wide-a0")
	if job == nil {
		t.Fatal("the refused job's Job is gone")
	}
	if pods := podsOf(t, ns, "wide-a0"); !ptr.Deref(job.Spec.Suspend, false) || len(nodes) != 0 || len(pods) != 0 {
		t.Errorf("refused Job: suspend %v, placement %v, %d pods; want suspended, no placement, no pods", job.Spec.Suspend, nodes, len(pods))
	}
}
