package trainingjob

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
	"kiln.dev/kiln/internal/render"
)

// checkReferences finds, before the first attempt, the claim behind every pvc:// data
// input in the job's namespace; a missing one keeps the job from starting, with an
// Admitted=False condition (and its Event) that names it. This is the controller's
// job, not admission's: admission would answer "does claim X exist in namespace N"
// to anyone allowed to create a TrainingJob there. Secrets named by spec.data are not
// looked up (the manager may not read Secrets): the kubelet reports a missing one on
// the fetch init container, and the job's failure says so.
func (r *Reconciler) checkReferences(ctx context.Context, tj *v1alpha1.TrainingJob) (bool, error) {
	if tj.Status.Shape != nil {
		return true, nil
	}
	var missing []string
	for i, d := range tj.Spec.Data {
		rest, ok := strings.CutPrefix(d.URI, "pvc://")
		if !ok {
			continue
		}
		claim, _, _ := strings.Cut(rest, "/")
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: tj.Namespace, Name: claim}, &corev1.PersistentVolumeClaim{}, client.UnsafeDisableDeepCopy)
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, fmt.Sprintf("spec.data[%d].uri: no PersistentVolumeClaim %s in namespace %s", i, claim, tj.Namespace))
		case err != nil:
			return false, fmt.Errorf("reading PersistentVolumeClaim %s: %w", claim, err)
		}
	}
	if len(missing) == 0 {
		return true, nil
	}
	r.setCondition(tj, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonReferenceNotFound,
		strings.Join(missing, "; ")+"; the job starts once it exists")
	return false, nil
}

// chooseShape picks the shape once and keeps it in status: a job's shape must
// not change under it because nodes came or went. It reports false when no
// shape fits, having said why in the Admitted condition.
func (r *Reconciler) chooseShape(ctx context.Context, tj *v1alpha1.TrainingJob) (bool, error) {
	if tj.Status.Shape != nil {
		return true, nil
	}
	// The first attempt's Job may exist already, with the shape it was made for.
	job := &batchv1.Job{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: tj.Namespace, Name: render.JobName(tj.Name, tj.Status.Attempt)}, job)
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("reading the Job: %w", err)
	}
	if s := shapeOfJob(job); err == nil && s != nil {
		tj.Status.Shape = s
		return true, nil
	}
	// Only nodes the pods may land on count, or a job pinned to a pool of 4-GPU
	// nodes would be shaped for the 8-GPU nodes it cannot reach.
	var selector map[string]string
	if pt := tj.Spec.PodTemplate; pt != nil {
		selector = pt.NodeSelector
	}
	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes, client.MatchingLabels(selector)); err != nil {
		return false, fmt.Errorf("listing nodes: %w", err)
	}
	shapes := placement.NodeShapesFromNodes(nodes.Items, gpuResource(tj))
	shape, err := placement.ForTrainingJob(&tj.Spec, shapes)
	if err != nil {
		msg := err.Error()
		if len(selector) > 0 {
			msg += fmt.Sprintf(" (only nodes matching spec.podTemplate.nodeSelector %s count)", formatSelector(selector))
		}
		r.setCondition(tj, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonNoFittingShape, msg)
		return false, nil
	}
	tj.Status.Shape = &v1alpha1.ShapeStatus{
		Nodes:            shape.Nodes,
		ProcessesPerNode: shape.ProcessesPerNode,
		GPUsPerNode:      shape.GPUsPerNode,
		Pool:             shape.Pool,
		Summary:          shape.Summary(),
		Reason:           shape.Reason,
	}
	ctrl.LoggerFrom(ctx).Info("chose shape", "shape", shape.Summary(), "pool", shape.Pool, "reason", shape.Reason)
	return true, nil
}

func gpuResource(tj *v1alpha1.TrainingJob) corev1.ResourceName {
	if g := tj.Spec.Resources.GPUResource; g != "" {
		return corev1.ResourceName(g)
	}
	return v1alpha1.DefaultGPUResource
}

func formatSelector(sel map[string]string) string {
	parts := make([]string, 0, len(sel))
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		parts = append(parts, k+"="+sel[k])
	}
	return strings.Join(parts, ",")
}

// shapeOfJob is the shape a Job was rendered for, nil if it does not say.
func shapeOfJob(job *batchv1.Job) *v1alpha1.ShapeStatus {
	s := &v1alpha1.ShapeStatus{}
	if json.Unmarshal([]byte(job.Annotations[v1alpha1.AnnotationShape]), s) != nil || s.Nodes == 0 {
		return nil
	}
	return s
}

func shapeOf(s *v1alpha1.ShapeStatus) placement.Shape {
	return placement.Shape{
		Nodes:            s.Nodes,
		ProcessesPerNode: s.ProcessesPerNode,
		GPUsPerNode:      s.GPUsPerNode,
		Pool:             s.Pool,
		Reason:           s.Reason,
	}
}

// createChildren creates whatever of the current attempt's objects is missing and
// returns the attempt's Job as stored. Existing objects are left alone: names are
// deterministic, so a restarted manager finds rather than duplicates them, and a
// change to a mutable field of the spec applies from the next attempt. It returns
// a nil Job when the spec cannot be rendered, having said why in status.
func (r *Reconciler) createChildren(ctx context.Context, tj *v1alpha1.TrainingJob) (*batchv1.Job, error) {
	if errs := r.Policy.TrainingJobSpec(&tj.Spec, field.NewPath("spec")); len(errs) > 0 {
		r.setCondition(tj, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonPolicyDenied, errs.ToAggregate().Error())
		return nil, nil
	}
	opts := render.Options{OwnerReferences: true, FetchImage: r.FetchImage}
	// The MPI SSH Secret is never read back (the manager may not read Secrets in
	// tenant namespaces): the renderer makes a fresh key, and the create below keeps
	// the stored one, as a create of a name that exists changes nothing.
	if tj.Spec.Resources.GPUs > 0 {
		rc := &nodev1.RuntimeClass{}
		switch err := r.Client.Get(ctx, client.ObjectKey{Name: "nvidia"}, rc); {
		case err == nil:
			opts.RuntimeClassName = render.NvidiaRuntimeClass(rc, gpuResource(tj))
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("reading RuntimeClass nvidia: %w", err)
		}
	}
	objs, err := render.TrainingJob(tj, shapeOf(tj.Status.Shape), opts)
	if err != nil {
		r.setCondition(tj, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonRenderFailed, err.Error())
		return nil, nil
	}
	if r.Inject != nil {
		r.Inject(&objs.Job.Spec.Template)
	}
	shape, err := json.Marshal(tj.Status.Shape)
	if err != nil {
		return nil, err
	}
	metav1.SetMetaDataAnnotation(&objs.Job.ObjectMeta, v1alpha1.AnnotationShape, string(shape))
	// Every attempt starts suspended, so no worker starts before all of them
	// fit: Kiln's admission releases the Job (see package admission), or
	// Kueue's when the job names a queue. Kiln's may release it at once, as
	// it is created.
	objs.Job.Spec.Suspend = ptr.To(true)
	jobCreated := false
	if done := r.placeNew(ctx, tj, objs.Job); done != nil {
		defer func() { done(jobCreated) }()
	}
	// A Secret is not cached, so it cannot be looked up before a create; it is
	// created only while the attempt's Job is not there yet (the Job comes last),
	// which keeps a running job's reconciles free of creates that would fail.
	jobExists := r.Client.Get(ctx, client.ObjectKeyFromObject(objs.Job), &batchv1.Job{}, client.UnsafeDisableDeepCopy) == nil
	for _, obj := range objs.List() {
		if _, ok := obj.(*corev1.Secret); ok && jobExists {
			continue
		}
		created, err := r.createIfAbsent(ctx, obj)
		if err != nil {
			return nil, err
		}
		if obj == client.Object(objs.Job) {
			jobCreated = created
		}
	}
	// The Job that exists is the one that runs: its shape is the one to record.
	if s := shapeOfJob(objs.Job); s != nil {
		tj.Status.Shape = s
	}
	return objs.Job, nil
}

// placeNew asks admission to release a Job not created yet as it is created;
// see Reconciler.PlaceNew.
func (r *Reconciler) placeNew(ctx context.Context, tj *v1alpha1.TrainingJob, job *batchv1.Job) (done func(created bool)) {
	if r.PlaceNew == nil || tj.Spec.QueueName != "" || ptr.Deref(tj.Spec.Suspend, false) {
		return nil
	}
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(job), &batchv1.Job{}, client.UnsafeDisableDeepCopy); !apierrors.IsNotFound(err) {
		return nil
	}
	return r.PlaceNew(job, tj)
}

// createIfAbsent leaves obj holding the stored object: the cached one when it
// exists, else the one just created; it reports whether it created it.
func (r *Reconciler) createIfAbsent(ctx context.Context, obj client.Object) (bool, error) {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if _, secret := obj.(*corev1.Secret); !secret {
		err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		if !apierrors.IsNotFound(err) {
			return false, err
		}
	}
	err := r.Client.Create(ctx, obj)
	switch {
	case apierrors.IsAlreadyExists(err):
		// The cache had not seen it yet; the stored one is the same rendering.
		// A Job's may be for a shape chosen before nodes changed, or still
		// suspended: it is read, so what is recorded is what runs.
		if job, ok := obj.(*batchv1.Job); ok {
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(job), job); err != nil {
				return false, fmt.Errorf("reading Job %s: %w", job.Name, err)
			}
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("creating %s %s: %w", kind, obj.GetName(), err)
	}
	ctrl.LoggerFrom(ctx).Info("created", "kind", kind, "object", obj.GetName())
	return true, nil
}

// deleteEarlierAttempts removes the Jobs, Services and hostfiles of attempts
// before the current one. Only earlier ones: a reconcile working from a stale
// copy must never remove the attempt a newer decision created. Background
// propagation lets the garbage collector remove the pods without blocking here.
func (r *Reconciler) deleteEarlierAttempts(ctx context.Context, tj *v1alpha1.TrainingJob) error {
	if tj.Status.Attempt == 0 {
		return nil
	}
	mine := []client.ListOption{client.InNamespace(tj.Namespace), client.MatchingLabels{v1alpha1.LabelTrainingJob: tj.Name}}
	var old []client.Object
	for _, list := range []client.ObjectList{&batchv1.JobList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{}} {
		if err := r.Client.List(ctx, list, mine...); err != nil {
			return fmt.Errorf("listing earlier attempts: %w", err)
		}
		_ = apimeta.EachListItem(list, func(o runtime.Object) error {
			old = append(old, o.(client.Object))
			return nil
		})
	}
	for _, obj := range old {
		attempt, err := strconv.ParseInt(obj.GetLabels()[v1alpha1.LabelAttempt], 10, 32)
		if err != nil || int32(attempt) >= tj.Status.Attempt || !metav1.IsControlledBy(obj, tj) || !obj.GetDeletionTimestamp().IsZero() {
			continue
		}
		err = r.Client.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground))
		if err := client.IgnoreNotFound(err); err != nil {
			return fmt.Errorf("deleting %s of attempt %d: %w", obj.GetName(), attempt, err)
		}
		gvk, _ := r.Client.GroupVersionKindFor(obj)
		ctrl.LoggerFrom(ctx).Info("deleted child of an earlier attempt", "kind", gvk.Kind, "object", obj.GetName(), "attempt", attempt)
	}
	return nil
}

// syncSuspend suspends the Job when spec.suspend asks. It never resumes one:
// the admission that released the Job releases it again once the whole gang
// fits (Kiln's, or Kueue's with a queue, which also suspends to preempt). The
// placement goes in the same write: a suspended gang holds no capacity, and
// its next admission chooses nodes afresh.
func (r *Reconciler) syncSuspend(ctx context.Context, tj *v1alpha1.TrainingJob, job *batchv1.Job) error {
	if !ptr.Deref(tj.Spec.Suspend, false) || ptr.Deref(job.Spec.Suspend, false) || jobFinished(job) {
		return nil
	}
	before := job.DeepCopy()
	job.Spec.Suspend = ptr.To(true)
	delete(job.Annotations, v1alpha1.AnnotationPlacement)
	if err := r.Client.Patch(ctx, job, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("suspending Job %s: %w", job.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("suspended the Job", "job", job.Name)
	return nil
}
