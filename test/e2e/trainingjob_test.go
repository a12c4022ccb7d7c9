package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

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
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/webhook"
	"kiln.dev/kiln/test/framework"
)

// timeout is generous for a loaded 2-core machine; checks poll every 200 ms.
const timeout = 60 * time.Second

// sim annotations change a simulated pod's fate (docs/development.md).
const (
	simRunTime  = "sim.kiln.dev/run-time"
	simExitCode = "sim.kiln.dev/exit-code"
)

func kilnClient(t *testing.T) client.Client {
	t.Helper()
	scheme, err := manager.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(plane.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// trainingJob is a CPU job that a simulated node runs for the plane's pod run time.
func trainingJob(ns, name string) *v1alpha1.TrainingJob {
	return &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.TrainingJobSpec{
			Image:   "python:3.12-slim",
			Command: []string{"python", "-c", "print('trained')"},
		},
	}
}

func withAnnotations(tj *v1alpha1.TrainingJob, kv ...string) *v1alpha1.TrainingJob {
	if tj.Spec.PodTemplate == nil {
		tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{}
	}
	if tj.Spec.PodTemplate.Annotations == nil {
		tj.Spec.PodTemplate.Annotations = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		tj.Spec.PodTemplate.Annotations[kv[i]] = kv[i+1]
	}
	return tj
}

func create(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %s: %v", obj.GetName(), err)
	}
}

// waitFor polls the TrainingJob until check accepts it and returns it.
func waitFor(t *testing.T, c client.Client, tj *v1alpha1.TrainingJob, check func(*v1alpha1.TrainingJob) error) *v1alpha1.TrainingJob {
	t.Helper()
	got := &v1alpha1.TrainingJob{}
	framework.Eventually(t, timeout, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(tj), got); err != nil {
			return err
		}
		return check(got)
	})
	return got
}

func inState(want v1alpha1.TrainingJobState) func(*v1alpha1.TrainingJob) error {
	return func(tj *v1alpha1.TrainingJob) error {
		if tj.Status.State != want {
			return fmt.Errorf("state %q, want %q; conditions: %s", tj.Status.State, want, conditions(tj))
		}
		return nil
	}
}

func conditions(tj *v1alpha1.TrainingJob) string {
	var parts []string
	for _, c := range tj.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, "; ")
}

func wantCondition(t *testing.T, tj *v1alpha1.TrainingJob, typ string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	c := apimeta.FindStatusCondition(tj.Status.Conditions, typ)
	if c == nil || c.Status != status || c.Reason != reason {
		t.Fatalf("condition %s: want %s/%s; conditions: %s", typ, status, reason, conditions(tj))
	}
	if c.ObservedGeneration != tj.Generation {
		t.Errorf("condition %s observedGeneration %d, want %d", typ, c.ObservedGeneration, tj.Generation)
	}
	return c
}

func waitGone(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	framework.Eventually(t, timeout, func() error {
		err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("%s still exists (err %v)", obj.GetName(), err)
	})
}

func podsOf(t *testing.T, ns, job string) []corev1.Pod {
	t.Helper()
	pods, err := clientset(t).CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int {
		return strings.Compare(a.Annotations[batchv1.JobCompletionIndexAnnotation], b.Annotations[batchv1.JobCompletionIndexAnnotation])
	})
	return pods.Items
}

// env maps the training container's variables to their values, or to the field
// path they are read from.
func env(p *corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, c := range p.Spec.Containers {
		if c.Name != render.ContainerName {
			continue
		}
		for _, e := range c.Env {
			out[e.Name] = e.Value
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				out[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
			}
		}
	}
	return out
}

// events returns the notes of the TrainingJob's Events with the given reason.
func events(t *testing.T, ns, name, reason string) []string {
	t.Helper()
	list, err := clientset(t).EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "TrainingJob" && e.Regarding.Name == name && e.Reason == reason {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

func TestTrainingJobCPUSingleProcessSucceeds(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	tj := trainingJob(ns, "cpu")
	create(t, c, tj)

	got := waitFor(t, c, tj, inState(v1alpha1.StateSucceeded))
	s := got.Status
	if s.Shape == nil || s.Shape.Summary != "1x1" || s.Shape.GPUsPerNode != 0 {
		t.Errorf("shape %+v, want 1x1 without GPUs", s.Shape)
	}
	if s.StartTime == nil || s.CompletionTime == nil || s.CompletionTime.Before(s.StartTime) {
		t.Errorf("start %v, completion %v: want both, in order", s.StartTime, s.CompletionTime)
	}
	if s.Succeeded != 1 || s.Active != 0 || s.Failed != 0 || s.Restarts != 0 || s.JobName != "cpu-a0" {
		t.Errorf("status %+v: want 1 succeeded worker of Job cpu-a0, none active or failed, no restarts", s)
	}
	if s.ObservedGeneration != got.Generation {
		t.Errorf("observedGeneration %d, want %d", s.ObservedGeneration, got.Generation)
	}
	// A CPU job tolerates no GPU taint, so the CPU node is the only one it may run on.
	if admitted := wantCondition(t, got, v1alpha1.TrainingJobAdmitted, metav1.ConditionTrue, v1alpha1.ReasonPlaced); !strings.Contains(admitted.Message, "rank 0 on cpu-0") {
		t.Errorf("Admitted message %q does not name the node", admitted.Message)
	}
	wantCondition(t, got, v1alpha1.TrainingJobSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)

	job := &batchv1.Job{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cpu-a0"}, job); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(job, got) {
		t.Errorf("Job %s is not controlled by the TrainingJob: %v", job.Name, job.OwnerReferences)
	}
	framework.Eventually(t, timeout, func() error {
		if len(events(t, ns, tj.Name, v1alpha1.ReasonCompleted)) == 0 {
			return errors.New("no Completed event yet")
		}
		return nil
	})
}

func TestTrainingJobPyTorchShapeFollowsTheNodes(t *testing.T) {
	tests := []struct {
		name         string
		nodeSelector map[string]string
		pool         string
		nodes, per   int
	}{
		{name: "8 GPUs on a pool of 8-GPU nodes", pool: "a100", nodes: 1, per: 8},
		{name: "8 GPUs pinned to a pool of 4-GPU nodes", nodeSelector: map[string]string{controlplane.PoolLabel: "l4"}, pool: "l4", nodes: 2, per: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c, ns, cs := kilnClient(t), namespace(t), clientset(t)
			tj := trainingJob(ns, "ddp")
			tj.Spec.Framework = v1alpha1.FrameworkPyTorch
			tj.Spec.Resources.GPUs = 8
			if tt.nodeSelector != nil {
				tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{NodeSelector: tt.nodeSelector}
			}
			create(t, c, tj)
			got := waitFor(t, c, tj, inState(v1alpha1.StateSucceeded))

			want := fmt.Sprintf("%dx%d", tt.nodes, tt.per)
			if sh := got.Status.Shape; sh == nil || sh.Summary != want || int(sh.GPUsPerNode) != tt.per || sh.Reason == "" {
				t.Fatalf("shape %+v, want %s with %d GPUs per node and a reason", sh, want, tt.per)
			}
			job := got.Status.JobName
			pods := podsOf(t, ns, job)
			if len(pods) != tt.nodes {
				t.Fatalf("%d pods, want %d", len(pods), tt.nodes)
			}
			master := fmt.Sprintf("%s-0.%s", job, job)
			for i, p := range pods {
				node, err := cs.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if node.Labels[controlplane.PoolLabel] != tt.pool {
					t.Errorf("pod %s on node %s of pool %q, want pool %s", p.Name, node.Name, node.Labels[controlplane.PoolLabel], tt.pool)
				}
				gpus := p.Spec.Containers[0].Resources.Limits[controlplane.GPUResource]
				if gpus.Value() != int64(tt.per) {
					t.Errorf("pod %s has %s GPUs, want %d", p.Name, gpus.String(), tt.per)
				}
				// The controller applied the pod injection when it rendered the Job,
				// so the API server did not have to call the webhook for the pod.
				if _, ok := p.Annotations[webhook.AnnotationInjected]; !ok ||
					!slices.ContainsFunc(p.Spec.Tolerations, func(t corev1.Toleration) bool { return t.Key == string(controlplane.GPUResource) }) {
					t.Errorf("pod %s: annotations %v, tolerations %v; want it injected when rendered", p.Name, p.Annotations, p.Spec.Tolerations)
				}
				if idx := p.Annotations[batchv1.JobCompletionIndexAnnotation]; idx != fmt.Sprint(i) {
					t.Errorf("pod %s has completion index %q, want %d", p.Name, idx, i)
				}
				// The Job controller names indexed pods <job>-<index> in the Service's
				// subdomain: index 0's is the address every rank dials.
				if i == 0 && p.Spec.Hostname+"."+p.Spec.Subdomain != master {
					t.Errorf("pod 0 resolves as %s.%s, want %s", p.Spec.Hostname, p.Spec.Subdomain, master)
				}
				e := env(&p)
				for k, v := range map[string]string{
					"PET_NNODES":         fmt.Sprint(tt.nodes),
					"PET_NPROC_PER_NODE": fmt.Sprint(tt.per),
					"PET_MASTER_ADDR":    master,
					"PET_MASTER_PORT":    "29500",
					"PET_NODE_RANK":      "fieldRef:metadata.annotations['" + batchv1.JobCompletionIndexAnnotation + "']",
				} {
					if e[k] != v {
						t.Errorf("pod %s: %s=%q, want %q", p.Name, k, e[k], v)
					}
				}
			}
		})
	}
}

func TestTrainingJobMPIHasALauncherAndAHostfileOfEveryWorker(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	tj := trainingJob(ns, "mpi")
	tj.Spec.Framework = v1alpha1.FrameworkMPI
	tj.Spec.Command = []string{"mpirun", "-np", "8", "python", "train.py"}
	tj.Spec.Resources.GPUs = 8
	tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 4}
	create(t, c, tj)
	got := waitFor(t, c, tj, inState(v1alpha1.StateSucceeded))

	job := got.Status.JobName
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.HostfileName(job)}, cm); err != nil {
		t.Fatal(err)
	}
	pods := podsOf(t, ns, job)
	if len(pods) != 2 {
		t.Fatalf("%d pods, want 2", len(pods))
	}
	var want strings.Builder
	for _, p := range pods {
		fmt.Fprintf(&want, "%s.%s slots=4\n", p.Spec.Hostname, p.Spec.Subdomain)
	}
	if got := cm.Data["hostfile"]; got != want.String() {
		t.Errorf("hostfile:\n%s\nwant every worker's DNS name:\n%s", got, want.String())
	}
	// Pod 0 is the launcher: the Job succeeds when it does.
	j := &batchv1.Job{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: job}, j); err != nil {
		t.Fatal(err)
	}
	if sp := j.Spec.SuccessPolicy; sp == nil || len(sp.Rules) != 1 || ptr.Deref(sp.Rules[0].SucceededIndexes, "") != "0" {
		t.Errorf("success policy %+v, want index 0 (the launcher)", sp)
	}
	if cmd := strings.Join(pods[0].Spec.Containers[0].Command, " "); !strings.HasSuffix(cmd, "mpirun -np 8 python train.py") {
		t.Errorf("launcher command %q does not run mpirun", cmd)
	}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.SSHSecretName(tj.Name)}, secret); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(secret, got) || len(secret.Data["authorized_keys"]) == 0 {
		t.Errorf("SSH secret: owners %v, keys %v", secret.OwnerReferences, slices.Collect(maps.Keys(secret.Data)))
	}
}

func TestTrainingJobGangRestartsThenFailsWithAnActionableMessage(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	tj := withAnnotations(trainingJob(ns, "flaky"), simExitCode, "3")
	tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 1}
	tj.Spec.Checkpoints = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}
	tj.Spec.Restart.MaxRestarts = ptr.To[int32](2)
	claim := render.PVCName(tj.Name, "checkpoints")
	create(t, c, tj)

	pvc := &corev1.PersistentVolumeClaim{}
	framework.Eventually(t, timeout, func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: claim}, pvc)
	})
	firstClaim := pvc.UID

	got := waitFor(t, c, tj, inState(v1alpha1.StateFailed))
	s := got.Status
	if s.Restarts != 2 || s.Attempt != 2 || s.JobName != "flaky-a2" {
		t.Errorf("restarts %d, attempt %d, job %s: want 2, 2, flaky-a2", s.Restarts, s.Attempt, s.JobName)
	}
	failed := wantCondition(t, got, v1alpha1.TrainingJobFailed, metav1.ConditionTrue, v1alpha1.ReasonRestartsExhausted)
	if s.LastFailure == nil || s.LastFailure.Index == nil || s.LastFailure.Reason != "Error" {
		t.Fatalf("lastFailure %+v, want the failing index and reason Error", s.LastFailure)
	}
	wantMsg := fmt.Sprintf("worker %d exited with code 3 (Error) on attempt 3 of 3", *s.LastFailure.Index)
	for _, m := range []string{wantMsg, "spec.restart.maxRestarts is 2", "kubectl logs -n " + ns + " flaky-a2-"} {
		if !strings.Contains(failed.Message, m) {
			t.Errorf("Failed message %q lacks %q", failed.Message, m)
		}
	}
	if s.CompletionTime == nil {
		t.Error("no completion time")
	}

	// Each restart was a new Job and Service; the earlier ones are gone.
	for _, name := range []string{"flaky-a0", "flaky-a1"} {
		waitGone(t, c, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
		waitGone(t, c, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	}
	// The last attempt mounted the same claim, untouched by the restarts.
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: claim}, pvc); err != nil || pvc.UID != firstClaim {
		t.Fatalf("claim %s: %v, uid %s, want the first one %s", claim, err, pvc.UID, firstClaim)
	}
	pods := podsOf(t, ns, "flaky-a2")
	if len(pods) != 2 {
		t.Fatalf("%d pods of the last attempt, want 2", len(pods))
	}
	for _, p := range pods {
		mounted := slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool {
			return v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim
		})
		if !mounted || env(&p)[v1alpha1.EnvAttempt] != "2" {
			t.Errorf("pod %s: claim %s mounted %t, %s=%q; want mounted, attempt 2", p.Name, claim, mounted, v1alpha1.EnvAttempt, env(&p)[v1alpha1.EnvAttempt])
		}
	}

	framework.Eventually(t, timeout, func() error {
		notes := events(t, ns, tj.Name, v1alpha1.ReasonWorkerFailed)
		for _, want := range []string{"restarting the whole gang as attempt 2", "restarting the whole gang as attempt 3"} {
			if !slices.ContainsFunc(notes, func(n string) bool {
				return strings.Contains(n, want) && strings.Contains(n, "exited with code 3 (Error)")
			}) {
				return fmt.Errorf("no restart Event %q naming the exit code among %q", want, notes)
			}
		}
		if len(events(t, ns, tj.Name, v1alpha1.ReasonRestartsExhausted)) == 0 {
			return errors.New("no RestartsExhausted Event")
		}
		return nil
	})
}

func TestTrainingJobSuspendAndResume(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	tj := withAnnotations(trainingJob(ns, "pausable"), simRunTime, "1h")
	create(t, c, tj)
	waitFor(t, c, tj, inState(v1alpha1.StateRunning))

	setSuspend := func(v bool) {
		t.Helper()
		patch := fmt.Appendf(nil, `{"spec":{"suspend":%t}}`, v)
		if err := c.Patch(ctx, tj, client.RawPatch("application/merge-patch+json", patch)); err != nil {
			t.Fatal(err)
		}
	}
	jobSuspended := func(want bool) func(*v1alpha1.TrainingJob) error {
		return func(got *v1alpha1.TrainingJob) error {
			j := &batchv1.Job{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pausable-a0"}, j); err != nil {
				return err
			}
			if ptr.Deref(j.Spec.Suspend, false) != want {
				return fmt.Errorf("Job suspend is %v, want %t", j.Spec.Suspend, want)
			}
			return nil
		}
	}

	setSuspend(true)
	got := waitFor(t, c, tj, func(got *v1alpha1.TrainingJob) error {
		if err := inState(v1alpha1.StateSuspended)(got); err != nil {
			return err
		}
		if got.Status.Active != 0 {
			return fmt.Errorf("%d workers still active", got.Status.Active)
		}
		return jobSuspended(true)(got)
	})
	wantCondition(t, got, v1alpha1.TrainingJobSuspended, metav1.ConditionTrue, v1alpha1.ReasonSuspendedBySpec)

	setSuspend(false)
	got = waitFor(t, c, tj, func(got *v1alpha1.TrainingJob) error {
		if err := inState(v1alpha1.StateRunning)(got); err != nil {
			return err
		}
		return jobSuspended(false)(got)
	})
	wantCondition(t, got, v1alpha1.TrainingJobSuspended, metav1.ConditionFalse, v1alpha1.ReasonResumed)
	if got.Status.JobName != "pausable-a0" || got.Status.Restarts != 0 {
		t.Errorf("resuming started job %s after %d restarts; want the same Job, no restart", got.Status.JobName, got.Status.Restarts)
	}
}

func TestTrainingJobWithAQueueLeavesAdmissionToKueue(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	tj := trainingJob(ns, "queued")
	tj.Spec.QueueName = "team-a"
	create(t, c, tj)
	got := waitFor(t, c, tj, inState(v1alpha1.StateQueued))
	wantCondition(t, got, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonWaitingForQueue)

	job := &batchv1.Job{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "queued-a0"}, job); err != nil {
		t.Fatal(err)
	}
	if job.Labels[render.LabelQueueName] != "team-a" || !ptr.Deref(job.Spec.Suspend, false) {
		t.Fatalf("Job labels %v, suspend %v: want the queue label and suspended", job.Labels, job.Spec.Suspend)
	}
	// Kueue is not installed: the job must stay queued rather than be started by Kiln.
	time.Sleep(2 * time.Second)
	if err := c.Get(ctx, client.ObjectKeyFromObject(job), job); err != nil || !ptr.Deref(job.Spec.Suspend, false) {
		t.Fatalf("Job %s was un-suspended without Kueue (err %v)", job.Name, err)
	}

	// Play Kueue admitting the workload: un-suspend the Job. Kiln must follow, not fight.
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"suspend":false}}`))
	if err := c.Patch(ctx, job, patch); err != nil {
		t.Fatal(err)
	}
	got = waitFor(t, c, tj, inState(v1alpha1.StateSucceeded))
	wantCondition(t, got, v1alpha1.TrainingJobAdmitted, metav1.ConditionTrue, v1alpha1.ReasonAdmittedByQueue)
}

func TestTrainingJobThatFitsNoShapeCreatesNothing(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	tj := trainingJob(ns, "nowhere")
	tj.Spec.Resources.GPUs = 8
	tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{NodeSelector: map[string]string{controlplane.PoolLabel: "cpu"}}
	create(t, c, tj)
	got := waitFor(t, c, tj, func(got *v1alpha1.TrainingJob) error {
		if apimeta.FindStatusCondition(got.Status.Conditions, v1alpha1.TrainingJobAdmitted) == nil {
			return errors.New("no Admitted condition yet")
		}
		return nil
	})
	cond := wantCondition(t, got, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonNoFittingShape)
	if !strings.Contains(cond.Message, "nodeSelector "+controlplane.PoolLabel+"=cpu") {
		t.Errorf("message %q does not say the node selector narrowed the nodes", cond.Message)
	}
	if got.Status.State != v1alpha1.StatePending || got.Status.Shape != nil {
		t.Errorf("state %s, shape %+v: want Pending without a shape", got.Status.State, got.Status.Shape)
	}
	var jobs batchv1.JobList
	var services corev1.ServiceList
	for _, list := range []client.ObjectList{&jobs, &services} {
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	if len(jobs.Items)+len(services.Items) != 0 {
		t.Errorf("created %d Jobs and %d Services for a job that fits nowhere", len(jobs.Items), len(services.Items))
	}
	framework.Eventually(t, timeout, func() error {
		if len(events(t, ns, tj.Name, v1alpha1.ReasonNoFittingShape)) == 0 {
			return errors.New("no NoFittingShape Event yet")
		}
		return nil
	})
}

func TestDeletingATrainingJobRemovesItsChildrenAndKeepsRetainedVolumes(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	tj := withAnnotations(trainingJob(ns, "gone"), simRunTime, "1h")
	tj.Spec.Checkpoints = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi"), RetentionPolicy: v1alpha1.RetentionRetain}
	tj.Spec.Output = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi"), RetentionPolicy: v1alpha1.RetentionDelete}
	create(t, c, tj)

	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gone-a0"}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gone-a0"}}
	kept := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.PVCName(tj.Name, "checkpoints")}}
	deleted := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.PVCName(tj.Name, "output")}}
	framework.Eventually(t, timeout, func() error {
		for _, o := range []client.Object{job, svc, kept, deleted} {
			if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
		}
		return nil
	})
	if len(kept.OwnerReferences) != 0 || len(deleted.OwnerReferences) != 1 {
		t.Fatalf("owners: retained claim %v, deleted claim %v; want none and the TrainingJob", kept.OwnerReferences, deleted.OwnerReferences)
	}

	if err := c.Delete(ctx, tj); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{job, svc, deleted} {
		waitGone(t, c, o)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(kept), kept); err != nil || !kept.DeletionTimestamp.IsZero() {
		t.Fatalf("retained claim: %v, deletion %v; want it kept", err, kept.DeletionTimestamp)
	}
}

func TestFinishedTrainingJobIsDeletedAfterItsTTL(t *testing.T) {
	c, ns := kilnClient(t), namespace(t)
	tj := trainingJob(ns, "shortlived")
	tj.Spec.TTLSecondsAfterFinished = ptr.To[int32](2)
	create(t, c, tj)
	waitGone(t, c, tj)
	waitGone(t, c, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shortlived-a0"}})
	framework.Eventually(t, timeout, func() error {
		if len(events(t, ns, tj.Name, "Expired")) == 0 {
			return errors.New("no Expired event yet")
		}
		return nil
	})
}

// The API server itself refuses bad TrainingJobs (CRD schema and CEL rules), with the path
// of the offending field, before any controller sees them.
func TestInvalidTrainingJobsAreRefusedWithTheFieldPath(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	tests := []struct {
		name   string
		mutate func(*v1alpha1.TrainingJob)
		field  string
	}{
		{name: "pytorch without GPUs", field: "spec.resources.gpus", mutate: func(tj *v1alpha1.TrainingJob) {
			tj.Spec.Framework = v1alpha1.FrameworkPyTorch
		}},
		{name: "negative GPUs", field: "spec.resources.gpus", mutate: func(tj *v1alpha1.TrainingJob) {
			tj.Spec.Framework = v1alpha1.FrameworkPyTorch
			tj.Spec.Resources.GPUs = -8
		}},
		{name: "topology that does not multiply to the GPUs", field: "spec.topology", mutate: func(tj *v1alpha1.TrainingJob) {
			tj.Spec.Resources.GPUs = 8
			tj.Spec.Topology = &v1alpha1.Topology{Nodes: 3, ProcessesPerNode: 2}
		}},
		{name: "unknown framework", field: "spec.framework", mutate: func(tj *v1alpha1.TrainingJob) {
			tj.Spec.Framework = "tensorflow"
		}},
		{name: "claim in another namespace (dotted)", field: "spec.data[0].uri", mutate: func(tj *v1alpha1.TrainingJob) {
			tj.Spec.Data = []v1alpha1.DataInput{{Name: "shards", URI: "pvc://shards.other-team/train"}}
		}},
		{name: "claim in another namespace (prefixed)", field: "spec.data[0].uri", mutate: func(tj *v1alpha1.TrainingJob) {
			tj.Spec.Data = []v1alpha1.DataInput{{Name: "shards", URI: "pvc://other-team:shards/train"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tj := trainingJob(ns, "invalid")
			tt.mutate(tj)
			wantInvalid(t, c.Create(ctx, tj), tt.field)
		})
	}

	t.Run("changed image", func(t *testing.T) {
		tj := trainingJob(ns, "immutable")
		tj.Spec.Suspend = ptr.To(true)
		create(t, c, tj)
		tj.Spec.Image = "python:3.13-slim"
		wantInvalid(t, c.Update(ctx, tj), "spec.image")
	})
}

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid error on %s, got %v", field, err)
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		t.Fatalf("no details in %v", err)
	}
	var fields []string
	for _, cause := range status.Status().Details.Causes {
		fields = append(fields, cause.Field)
	}
	if !slices.Contains(fields, field) {
		t.Errorf("causes name %q, want %s: %v", fields, field, err)
	}
}
