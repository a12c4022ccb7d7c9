// Package trainingjob reconciles TrainingJobs: it chooses the shape once, creates
// the rendered children of the current attempt, mirrors the attempt's Job into
// status, restarts the whole gang after a failure, and cleans up after the TTL.
//
// Decisions (a restart, the final failure) are recorded in status first; the
// actions they imply (deleting the failed attempt, creating the next) are taken by
// a later reconcile that reads that status back. So a manager that dies between
// the two never loses a decision and never repeats one.
package trainingjob

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/validation"
)

// statusLag is how long a TrainingJob's status may lag behind a gang that is
// starting (see onlyStarting): a gang whose workers start one by one costs a
// status write or two, not one per worker, and one that starts at once is
// admitted and running in a single write.
const statusLag = 2 * time.Second

// noShapeRetry is how often a job that fits no node shape looks again: nodes
// come and go (autoscaling, repairs) without the job changing.
const noShapeRetry = time.Minute

// Reconciler reconciles TrainingJobs.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads a failed Job's pods directly from the API server, so the
	// failure is told from their latest state, not from a cache behind it.
	APIReader client.Reader
	// Recorder emits Events on the TrainingJob.
	Recorder events.EventRecorder
	// FetchImage runs the init step that downloads s3://, gs:// and https://
	// data inputs (cmd/kiln-fetch); without it such inputs are refused.
	FetchImage string
	// Inject applies the pod webhook's injection to the Job's pod template, so the
	// workers are created complete and the API server skips the webhook for each
	// of them; nil leaves the pods to the webhook.
	Inject func(*corev1.PodTemplateSpec)
	// PlaceNew, when set, may admit a new attempt's gang as its Job is created,
	// releasing the Job before it is stored (admission.Admitter.PlaceNew); done
	// is then called with whether the Job was created.
	PlaceNew func(job *batchv1.Job, tj *v1alpha1.TrainingJob) (done func(created bool))
	// Logs reads rank 0's log when a gang fails, for the last checkpoint it
	// reported; nil skips that.
	Logs kubernetes.Interface
	// Clock stamps condition transitions, completion times and the TTL.
	Clock clock.PassiveClock
	// Policy is what the administrator lets jobs ask of the hosts; it is checked again here,
	// not only at admission, so a job created while the webhook was off still cannot.
	Policy validation.Policy

	mu sync.Mutex
	// unwritten is when each TrainingJob's status first differed, with only
	// a starting gang's news, from the one stored.
	unwritten map[types.NamespacedName]time.Time
}

// Verbs are exactly those the controller uses; the cached client needs list and
// watch, and get is for a Job whose create raced the cache.
//
// +kubebuilder:rbac:groups=kiln.dev,resources=trainingjobs,verbs=list;watch;delete
// +kubebuilder:rbac:groups=kiln.dev,resources=trainingjobs/status,verbs=patch
// Owner references that block owner deletion need update on the owner's finalizers
// where the OwnerReferencesPermissionEnforcement admission plugin is on.
// +kubebuilder:rbac:groups=kiln.dev,resources=trainingjobs/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services;configmaps,verbs=list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=list;watch;create
// The MPI SSH Secret is created, never read or watched (see createChildren).
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create
// +kubebuilder:rbac:groups="",resources=nodes,verbs=list;watch
// +kubebuilder:rbac:groups=node.k8s.io,resources=runtimeclasses,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=list
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the controller; changes to any child wake its TrainingJob.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.TrainingJob{}).
		Owns(&batchv1.Job{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Owns(&corev1.ConfigMap{}).
		Named("trainingjob").
		Complete(r)
}

// Reconcile runs the steps against a copy of the TrainingJob and writes the status
// they produced, once.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	tj := &v1alpha1.TrainingJob{}
	if err := r.Client.Get(ctx, req.NamespacedName, tj); err != nil {
		r.lagged(req.NamespacedName)
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !tj.DeletionTimestamp.IsZero() {
		// Owner references hand the children to the garbage collector; retained
		// claims have none and stay.
		return ctrl.Result{}, nil
	}
	before := tj.DeepCopy()
	result, err := r.steps(ctx, tj)
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		// Deleting a namespace stops its pods, which fails the Job; the new
		// attempt cannot be created, and need not be: this TrainingJob goes too.
		ctrl.LoggerFrom(ctx).V(1).Info("namespace is terminating; not retrying", "reason", err.Error())
		err = nil
	}
	tj.Status.ObservedGeneration = tj.Generation
	tj.Status.State = stateOf(tj.Status.Conditions)
	if err == nil && onlyTheNewJob(&before.Status, &tj.Status) {
		// Nothing to tell yet but the shape, which the new Job carries; it is
		// recorded with the admission decision that follows in a moment.
		return result, err
	}
	if err == nil && onlyStarting(&before.Status, &tj.Status) {
		if wait := r.lag(req.NamespacedName); wait > 0 {
			if result.RequeueAfter == 0 || wait < result.RequeueAfter {
				result.RequeueAfter = wait
			}
			return result, nil
		}
	}
	if werr := r.writeStatus(ctx, before, tj); werr != nil {
		return ctrl.Result{}, errors.Join(err, werr)
	}
	r.lagged(req.NamespacedName)
	return result, err
}

// lag says how much longer the status of a starting gang may wait to be
// written: statusLag from when it first differed.
func (r *Reconciler) lag(key types.NamespacedName) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.Clock.Now()
	since, ok := r.unwritten[key]
	if !ok {
		if r.unwritten == nil {
			r.unwritten = map[types.NamespacedName]time.Time{}
		}
		r.unwritten[key], since = now, now
	}
	return max(0, statusLag-now.Sub(since))
}

// lagged forgets that the status waited: it was written, or the TrainingJob is gone.
func (r *Reconciler) lagged(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.unwritten, key)
}

func (r *Reconciler) steps(ctx context.Context, tj *v1alpha1.TrainingJob) (ctrl.Result, error) {
	if finished(tj) {
		// Read from the cache, so the finish is already stored: nothing is
		// recreated (not even a Job its own TTL removed), only the TTL runs.
		return r.expire(ctx, tj)
	}
	if ok, err := r.checkReferences(ctx, tj); err != nil || !ok {
		return ctrl.Result{RequeueAfter: noShapeRetry}, err
	}
	if ok, err := r.chooseShape(ctx, tj); err != nil || !ok {
		return ctrl.Result{RequeueAfter: noShapeRetry}, err
	}
	if err := r.deleteEarlierAttempts(ctx, tj); err != nil {
		return ctrl.Result{}, err
	}
	job, err := r.createChildren(ctx, tj)
	if err != nil || job == nil {
		return ctrl.Result{}, err
	}
	if err := r.syncSuspend(ctx, tj, job); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.observe(ctx, tj, job)
}

// writeStatus patches the status when the steps changed it. The patch carries the
// resourceVersion read, so a concurrent writer is never overwritten.
func (r *Reconciler) writeStatus(ctx context.Context, before, tj *v1alpha1.TrainingJob) error {
	if equality.Semantic.DeepEqual(before.Status, tj.Status) {
		return nil
	}
	err := r.Client.Status().Patch(ctx, tj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		// The cache was behind: the newer object's watch event reconciles again,
		// and decides again from what is stored.
		ctrl.LoggerFrom(ctx).V(1).Info("status not written; will reconcile the newer object", "reason", err.Error())
		return nil
	case err != nil:
		return fmt.Errorf("writing status: %w", err)
	}
	// Only after the write: a transition that was not stored did not happen.
	r.recordTransitions(tj, before.Status.Conditions)
	return nil
}

// onlyTheNewJob reports whether the steps found nothing to record but what the
// first attempt's Job, just made, already says: its shape and name.
func onlyTheNewJob(before, after *v1alpha1.TrainingJobStatus) bool {
	if before.Shape != nil || after.Shape == nil {
		return false
	}
	s := after.DeepCopy()
	s.Shape, s.JobName, s.ObservedGeneration, s.State = before.Shape, before.JobName, before.ObservedGeneration, before.State
	return equality.Semantic.DeepEqual(*before, *s)
}

// onlyStarting reports whether the status changed only in what a gang says
// as it starts: its shape and Job, that it was admitted, that its workers are
// starting, and how many are. None of that asks anything of anyone, so it may
// wait for the news that follows: all workers running, or one failed.
func onlyStarting(before, after *v1alpha1.TrainingJobStatus) bool {
	if equality.Semantic.DeepEqual(*before, *after) {
		return false
	}
	s := after.DeepCopy()
	s.Shape, s.JobName, s.ObservedGeneration, s.State = before.Shape, before.JobName, before.ObservedGeneration, before.State
	s.Active, s.Ready, s.Succeeded, s.Failed, s.StartTime = before.Active, before.Ready, before.Succeeded, before.Failed, before.StartTime
	s.Conditions = nil
	for _, c := range after.Conditions {
		starting := c.Type == v1alpha1.TrainingJobAdmitted && c.Status == metav1.ConditionTrue ||
			c.Type == v1alpha1.TrainingJobRunning && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonWorkersStarting
		if !starting {
			s.Conditions = append(s.Conditions, c)
		} else if old := apimeta.FindStatusCondition(before.Conditions, c.Type); old != nil {
			s.Conditions = append(s.Conditions, *old)
		}
	}
	return equality.Semantic.DeepEqual(*before, *s)
}

// expire deletes a finished TrainingJob once spec.ttlSecondsAfterFinished passed.
func (r *Reconciler) expire(ctx context.Context, tj *v1alpha1.TrainingJob) (ctrl.Result, error) {
	ttl := tj.Spec.TTLSecondsAfterFinished
	if ttl == nil || tj.Status.CompletionTime == nil {
		return ctrl.Result{}, nil
	}
	left := tj.Status.CompletionTime.Add(time.Duration(*ttl) * time.Second).Sub(r.Clock.Now())
	if left > 0 {
		return ctrl.Result{RequeueAfter: left}, nil
	}
	err := r.Client.Delete(ctx, tj, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err := client.IgnoreNotFound(err); err != nil {
		return ctrl.Result{}, fmt.Errorf("deleting expired TrainingJob: %w", err)
	}
	ctrl.LoggerFrom(ctx).Info("deleted finished TrainingJob after its TTL", "ttlSeconds", *ttl)
	r.Recorder.Eventf(tj, nil, corev1.EventTypeNormal, "Expired", "Delete",
		"deleted %ds after it finished (spec.ttlSecondsAfterFinished)", *ttl)
	return ctrl.Result{}, nil
}
