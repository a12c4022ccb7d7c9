package trainingjob

import (
	"context"
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
	"kiln.dev/kiln/internal/render"
)

// observe mirrors the current attempt's Job into status and decides what its
// state means for the TrainingJob.
func (r *Reconciler) observe(ctx context.Context, tj *v1alpha1.TrainingJob, job *batchv1.Job) error {
	s := &tj.Status
	s.JobName = job.Name
	s.Active, s.Ready, s.Succeeded, s.Failed = job.Status.Active, ptr.Deref(job.Status.Ready, 0), job.Status.Succeeded, job.Status.Failed
	if s.StartTime == nil && job.Status.StartTime != nil {
		s.StartTime = job.Status.StartTime.DeepCopy()
	}
	failed := jobCondition(job, batchv1.JobFailed)
	if failed == nil {
		// FailureTarget comes first, while the Job stops its other pods; the gang
		// is lost either way, so there is no need to wait for them.
		failed = jobCondition(job, batchv1.JobFailureTarget)
	}
	switch {
	case jobCondition(job, batchv1.JobComplete) != nil:
		r.succeed(tj, job)
	case failed != nil:
		return r.fail(ctx, tj, job, failed)
	case ptr.Deref(job.Spec.Suspend, false):
		r.suspended(tj, job)
	default:
		r.running(tj, job)
	}
	return nil
}

// admit records that the gang was let start: by Kiln, on the nodes of the
// Job's placement, or by Kueue, when queued.
func (r *Reconciler) admit(tj *v1alpha1.TrainingJob, job *batchv1.Job) {
	shape := tj.Status.Shape
	msg := fmt.Sprintf("shape %s: %s", shape.Summary, shape.Reason)
	reason := v1alpha1.ReasonShapeChosen // a Job running without Kiln's placement, made before Kiln admitted gangs
	if q := tj.Spec.QueueName; q != "" {
		reason = v1alpha1.ReasonAdmittedByQueue
		msg = fmt.Sprintf("admitted by Kueue from LocalQueue %s; %s", q, msg)
	} else if nodes := placement.DecodePlacement(job.Annotations[v1alpha1.AnnotationPlacement]); len(nodes) > 0 {
		reason = v1alpha1.ReasonPlaced
		msg = fmt.Sprintf("placed %s; %s", describePlacement(nodes), msg)
	}
	r.setCondition(tj, v1alpha1.TrainingJobAdmitted, metav1.ConditionTrue, reason, msg)
}

// describePlacement says where each rank runs: "rank 0 on a100-0, rank 1 on a100-1".
func describePlacement(nodes []string) string {
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = fmt.Sprintf("rank %d on %s", i, n)
	}
	return strings.Join(parts, ", ")
}

func (r *Reconciler) running(tj *v1alpha1.TrainingJob, job *batchv1.Job) {
	s := &tj.Status
	r.admit(tj, job)
	r.clearCondition(tj, v1alpha1.TrainingJobSuspended, v1alpha1.ReasonResumed, "the workers run again")
	attempt := s.Restarts + 1
	switch {
	case s.Ready+s.Succeeded >= s.Shape.Nodes:
		msg := fmt.Sprintf("all %d workers of attempt %d are running", s.Shape.Nodes, attempt)
		if how := render.Launch(tj, shapeOf(s.Shape)); how != "" {
			msg += "; " + how
		}
		r.setCondition(tj, v1alpha1.TrainingJobRunning, metav1.ConditionTrue, v1alpha1.ReasonAllWorkersRunning, msg)
		r.clearCondition(tj, v1alpha1.TrainingJobRestarting, v1alpha1.ReasonAllWorkersRunning, msg)
	case !apimeta.IsStatusConditionTrue(s.Conditions, v1alpha1.TrainingJobRunning):
		// A worker that is briefly unready does not stop a running gang; a worker
		// that fails fails the Job, which is seen above.
		r.setCondition(tj, v1alpha1.TrainingJobRunning, metav1.ConditionFalse, v1alpha1.ReasonWorkersStarting,
			fmt.Sprintf("waiting for the %d workers of attempt %d to start", s.Shape.Nodes, attempt))
	}
}

// suspended explains what holds a suspended Job: spec.suspend, Kueue, or
// Kiln's admission, whose latest decision is on the Job (package admission).
func (r *Reconciler) suspended(tj *v1alpha1.TrainingJob, job *batchv1.Job) {
	if ptr.Deref(tj.Spec.Suspend, false) {
		msg := "spec.suspend is true, so no worker runs; set it to false to resume"
		// A suspended gang holds no nodes; resuming admits it again.
		r.clearCondition(tj, v1alpha1.TrainingJobAdmitted, v1alpha1.ReasonSuspendedBySpec, msg)
		r.setCondition(tj, v1alpha1.TrainingJobSuspended, metav1.ConditionTrue, v1alpha1.ReasonSuspendedBySpec, msg)
		r.clearCondition(tj, v1alpha1.TrainingJobRunning, v1alpha1.ReasonSuspendedBySpec, msg)
		return
	}
	if q := tj.Spec.QueueName; q != "" {
		msg := fmt.Sprintf("waiting for Kueue to admit the job from LocalQueue %s", q)
		r.setCondition(tj, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonWaitingForQueue, msg)
		r.setCondition(tj, v1alpha1.TrainingJobSuspended, metav1.ConditionTrue, v1alpha1.ReasonWaitingForQueue, msg)
		r.clearCondition(tj, v1alpha1.TrainingJobRunning, v1alpha1.ReasonWaitingForQueue, msg)
		return
	}
	why := job.Annotations[v1alpha1.AnnotationAdmissionMessage]
	switch job.Annotations[v1alpha1.AnnotationAdmission] {
	case string(placement.Waiting):
		r.setCondition(tj, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonWaitingForCapacity, why)
		r.setCondition(tj, v1alpha1.TrainingJobSuspended, metav1.ConditionTrue, v1alpha1.ReasonWaitingForCapacity, why)
		r.clearCondition(tj, v1alpha1.TrainingJobRunning, v1alpha1.ReasonWaitingForCapacity, why)
	case string(placement.Refused):
		// Not a hold that lifts by itself, so not Suspended: the job cannot run
		// on the cluster's nodes as they are.
		msg := fmt.Sprintf("refused: %s; Kiln looks again when nodes change", why)
		r.setCondition(tj, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonRefused, msg)
		r.clearCondition(tj, v1alpha1.TrainingJobSuspended, v1alpha1.ReasonRefused, msg)
		r.clearCondition(tj, v1alpha1.TrainingJobRunning, v1alpha1.ReasonRefused, msg)
	}
	// No decision yet: the first admission pass comes at once, and most jobs
	// start then, so nothing is said until it has spoken.
}

func (r *Reconciler) succeed(tj *v1alpha1.TrainingJob, job *batchv1.Job) {
	s := &tj.Status
	r.admit(tj, job)
	msg := fmt.Sprintf("all %d workers of attempt %d finished", s.Shape.Nodes, s.Restarts+1)
	if tj.Spec.Framework == v1alpha1.FrameworkMPI {
		msg = fmt.Sprintf("the launcher (worker 0) of attempt %d finished", s.Restarts+1)
	}
	r.setCondition(tj, v1alpha1.TrainingJobSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted, msg)
	r.clearCondition(tj, v1alpha1.TrainingJobRunning, v1alpha1.ReasonCompleted, msg)
	r.clearCondition(tj, v1alpha1.TrainingJobRestarting, v1alpha1.ReasonCompleted, msg)
	s.CompletionTime = job.Status.CompletionTime.DeepCopy()
	if s.CompletionTime == nil {
		s.CompletionTime = ptr.To(metav1.NewTime(r.Clock.Now()))
	}
}

// fail restarts the gang as a new attempt while restarts are left, and fails the
// TrainingJob for good after that. The failed attempt's Job is deleted by the
// next reconcile (see deleteEarlierAttempts), once the new attempt is stored.
func (r *Reconciler) fail(ctx context.Context, tj *v1alpha1.TrainingJob, job *batchv1.Job, cond *batchv1.JobCondition) error {
	s := &tj.Status
	r.admit(tj, job)
	maxRestarts := ptr.Deref(tj.Spec.Restart.MaxRestarts, v1alpha1.DefaultMaxRestarts)
	attempt := fmt.Sprintf("attempt %d of %d", s.Restarts+1, maxRestarts+1)

	if cond.Reason == batchv1.JobReasonDeadlineExceeded {
		// A time budget is the user's decision: running it again would only
		// spend it again.
		msg := fmt.Sprintf("%s ran longer than spec.activeDeadlineSeconds (%ds) and was stopped; raise it or let the code checkpoint sooner",
			attempt, ptr.Deref(tj.Spec.ActiveDeadlineSeconds, 0))
		s.LastFailure = &v1alpha1.FailureStatus{Reason: v1alpha1.ReasonDeadlineExceeded, Message: msg}
		r.failForGood(tj, v1alpha1.ReasonDeadlineExceeded, msg)
		return nil
	}

	var pods corev1.PodList
	// The controller UID, not the name, so no pod of an earlier same-named Job counts.
	err := r.APIReader.List(ctx, &pods, client.InNamespace(job.Namespace), client.MatchingLabels{batchv1.ControllerUidLabel: string(job.UID)})
	if err != nil {
		return fmt.Errorf("listing the pods of Job %s: %w", job.Name, err)
	}
	f := diagnose(job, cond, pods.Items)
	if s.Restarts < maxRestarts {
		r.readCheckpoint(ctx, tj, pods.Items)
		msg := fmt.Sprintf("%s on %s; restarting the whole gang as attempt %d", f.what, attempt, s.Restarts+2)
		s.LastFailure = &v1alpha1.FailureStatus{Index: f.index, Reason: f.reason, Message: msg}
		s.Restarts++
		s.Attempt++
		s.JobName = render.JobName(tj.Name, s.Attempt)
		s.Active, s.Ready, s.Succeeded, s.Failed = 0, 0, 0, 0
		r.setCondition(tj, v1alpha1.TrainingJobRestarting, metav1.ConditionTrue, v1alpha1.ReasonWorkerFailed, msg)
		r.clearCondition(tj, v1alpha1.TrainingJobRunning, v1alpha1.ReasonWorkerFailed, msg)
		return nil
	}
	msg := fmt.Sprintf("%s on %s; no restart left (spec.restart.maxRestarts is %d)", f.what, attempt, maxRestarts)
	if f.pod != "" {
		msg += fmt.Sprintf(". Its log: kubectl logs -n %s %s", job.Namespace, f.pod)
	}
	reason := v1alpha1.ReasonRestartsExhausted
	if maxRestarts == 0 {
		reason = v1alpha1.ReasonWorkerFailed
	}
	s.LastFailure = &v1alpha1.FailureStatus{Index: f.index, Reason: f.reason, Message: msg}
	r.failForGood(tj, reason, msg)
	return nil
}

// failForGood keeps the failed Job, so its pods' logs can still be read.
func (r *Reconciler) failForGood(tj *v1alpha1.TrainingJob, reason, msg string) {
	r.setCondition(tj, v1alpha1.TrainingJobFailed, metav1.ConditionTrue, reason, msg)
	r.clearCondition(tj, v1alpha1.TrainingJobRunning, reason, msg)
	r.clearCondition(tj, v1alpha1.TrainingJobRestarting, reason, msg)
	tj.Status.CompletionTime = ptr.To(metav1.NewTime(r.Clock.Now()))
}

// diagnose finds the worker whose failure failed the Job.
func diagnose(job *batchv1.Job, cond *batchv1.JobCondition, pods []corev1.Pod) failure {
	if lost := job.Annotations[v1alpha1.AnnotationLostNode]; lost != "" {
		// The worker's pod went with its node; the others may have failed after it.
		return failure{reason: "NodeLost", what: lost}
	}
	if p := firstFailed(pods); p != nil {
		return describe(p)
	}
	// The pods are gone (deleted by hand, or by the node's removal): the Job's
	// own account is all there is.
	return failure{reason: cond.Reason, what: fmt.Sprintf("Job %s failed (%s: %s)", job.Name, cond.Reason, cond.Message)}
}

func jobCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if c := &job.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func jobFinished(job *batchv1.Job) bool {
	for _, t := range []batchv1.JobConditionType{batchv1.JobComplete, batchv1.JobFailed, batchv1.JobFailureTarget, batchv1.JobSuccessCriteriaMet} {
		if jobCondition(job, t) != nil {
			return true
		}
	}
	return false
}

func finished(tj *v1alpha1.TrainingJob) bool {
	return apimeta.IsStatusConditionTrue(tj.Status.Conditions, v1alpha1.TrainingJobSucceeded) ||
		apimeta.IsStatusConditionTrue(tj.Status.Conditions, v1alpha1.TrainingJobFailed)
}

func (r *Reconciler) setCondition(tj *v1alpha1.TrainingJob, t string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&tj.Status.Conditions, metav1.Condition{
		Type:               t,
		Status:             status,
		Reason:             reason,
		Message:            msg,
		ObservedGeneration: tj.Generation,
		LastTransitionTime: metav1.NewTime(r.Clock.Now()),
	})
}

// clearCondition sets a condition false, but only one that was recorded: a
// condition that never held needs no "not" of its own.
func (r *Reconciler) clearCondition(tj *v1alpha1.TrainingJob, t, reason, msg string) {
	if apimeta.FindStatusCondition(tj.Status.Conditions, t) != nil {
		r.setCondition(tj, t, metav1.ConditionFalse, reason, msg)
	}
}

// stateOf sums the conditions up in one word for the printer column.
func stateOf(conds []metav1.Condition) v1alpha1.TrainingJobState {
	isTrue := func(t string) bool { return apimeta.IsStatusConditionTrue(conds, t) }
	switch {
	case isTrue(v1alpha1.TrainingJobFailed):
		return v1alpha1.StateFailed
	case isTrue(v1alpha1.TrainingJobSucceeded):
		return v1alpha1.StateSucceeded
	case isTrue(v1alpha1.TrainingJobSuspended):
		switch apimeta.FindStatusCondition(conds, v1alpha1.TrainingJobSuspended).Reason {
		case v1alpha1.ReasonWaitingForQueue, v1alpha1.ReasonWaitingForCapacity:
			return v1alpha1.StateQueued
		}
		return v1alpha1.StateSuspended
	case isTrue(v1alpha1.TrainingJobRunning):
		return v1alpha1.StateRunning
	case isTrue(v1alpha1.TrainingJobRestarting):
		return v1alpha1.StateRestarting
	}
	return v1alpha1.StatePending
}

// maxEventNote is the events.k8s.io limit on an Event's note.
const maxEventNote = 1024

// recordTransitions emits an Event for each condition that changed: on becoming
// true, and for Admitted and Suspended, whose false is news too (no fitting
// shape, waiting for a queue, resumed). Running or Restarting turning false
// always comes with another condition's Event. A waiting job's reason follows
// the cluster as other jobs come and go; only its start is news.
func (r *Reconciler) recordTransitions(tj *v1alpha1.TrainingJob, before []metav1.Condition) {
	for _, c := range tj.Status.Conditions {
		old := apimeta.FindStatusCondition(before, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason &&
			(old.Message == c.Message || c.Reason == v1alpha1.ReasonWaitingForCapacity) {
			continue
		}
		if c.Status != metav1.ConditionTrue && c.Type != v1alpha1.TrainingJobAdmitted && c.Type != v1alpha1.TrainingJobSuspended {
			continue
		}
		if c.Type == v1alpha1.TrainingJobSuspended && c.Status != metav1.ConditionTrue && old == nil {
			continue
		}
		eventType := corev1.EventTypeNormal
		if warns(c) {
			eventType = corev1.EventTypeWarning
		}
		note := c.Message
		if len(note) > maxEventNote {
			note = note[:maxEventNote-3] + "..."
		}
		r.Recorder.Eventf(tj, nil, eventType, c.Reason, c.Type, "%s", note)
	}
}

func warns(c metav1.Condition) bool {
	switch c.Type {
	case v1alpha1.TrainingJobFailed, v1alpha1.TrainingJobRestarting:
		return c.Status == metav1.ConditionTrue
	case v1alpha1.TrainingJobAdmitted:
		return c.Reason == v1alpha1.ReasonNoFittingShape || c.Reason == v1alpha1.ReasonReferenceNotFound || c.Reason == v1alpha1.ReasonRenderFailed || c.Reason == v1alpha1.ReasonRefused
	}
	return false
}
