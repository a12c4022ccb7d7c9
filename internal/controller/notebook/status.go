package notebook

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/validation"
)

// now is the clock's time at the precision status keeps, so that a status
// written and read back compares equal.
func (r *Reconciler) now() time.Time { return r.Clock.Now().Truncate(time.Second) }

// started records when the notebook (re)starts: on its first reconcile, and
// when spec.stopped turns false after a stop or a cull.
func (r *Reconciler) started(nb *v1alpha1.Notebook) {
	if nb.Spec.Stopped {
		return
	}
	wasStopped := apimeta.IsStatusConditionTrue(nb.Status.Conditions, v1alpha1.NotebookConditionStopped)
	if nb.Status.StartTime != nil && !wasStopped {
		return
	}
	nb.Status.StartTime = &metav1.Time{Time: r.now()}
	if wasStopped {
		r.setCondition(nb, v1alpha1.NotebookConditionStopped, metav1.ConditionFalse, v1alpha1.ReasonStarted,
			fmt.Sprintf("started again with workspace %s", workspaceClaimName(nb)))
	}
}

func idleTimeout(nb *v1alpha1.Notebook) time.Duration {
	if t := nb.Spec.IdleTimeout; t != nil {
		return t.Duration
	}
	return 0
}

// cull stops the notebook when its known activity is older than the idle
// timeout, and otherwise returns when to look again. The server is asked only
// while its pod is ready; until then, only the annotation can speak.
func (r *Reconciler) cull(ctx context.Context, nb *v1alpha1.Notebook, sts *appsv1.StatefulSet, token string) (time.Duration, error) {
	timeout := idleTimeout(nb)
	if timeout <= 0 {
		apimeta.RemoveStatusCondition(&nb.Status.Conditions, v1alpha1.NotebookConditionActivityKnown)
		return 0, nil
	}
	in := cullInput{now: r.Clock.Now(), idleTimeout: timeout}
	if st := nb.Status.StartTime; st != nil {
		in.started = st.Time
	}
	var annotationErr error
	if v, ok := nb.Annotations[v1alpha1.AnnotationLastActivity]; ok {
		t, err := time.Parse(time.RFC3339, v)
		if err == nil {
			in.annotation = &t
		} else {
			annotationErr = fmt.Errorf("annotation %s=%q is not an RFC 3339 time", v1alpha1.AnnotationLastActivity, v)
		}
	}
	podReady := sts != nil && sts.Status.ReadyReplicas > 0
	var serverErr error
	switch {
	case podReady && token != "":
		a, err := r.Activity.Activity(ctx, nb, token)
		if err != nil {
			serverErr = err
		} else {
			in.server = &a
		}
	case in.annotation == nil && annotationErr == nil:
		// Nothing to say before the server runs; the pod's readiness wakes us.
		return 0, nil
	default:
		serverErr = errors.New("the notebook's pod is not ready")
	}

	d := decideCull(in)
	r.activityCondition(nb, in, serverErr, annotationErr)
	if d.known {
		nb.Status.LastActivity = &metav1.Time{Time: d.last.Truncate(time.Second)}
	}
	if !d.cull {
		ctrl.LoggerFrom(ctx).V(1).Info("notebook in use", "known", d.known, "idle", d.idle.String(), "lookAgainIn", d.after.String())
		return d.after, nil
	}

	// Stopping is the same write a user makes, so it survives a manager restart
	// and is undone the same way. Patched on a copy: the answer carries the
	// stored status, which would overwrite what this reconcile found.
	orig := nb.DeepCopy()
	stopped := nb.DeepCopy()
	stopped.Spec.Stopped = true
	err := r.Client.Patch(ctx, stopped, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		ctrl.LoggerFrom(ctx).V(1).Info("not culled; will reconcile the newer object", "reason", err.Error())
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("stopping the idle notebook: %w", err)
	}
	nb.Spec.Stopped, nb.Generation, nb.ResourceVersion = true, stopped.Generation, stopped.ResourceVersion
	msg := fmt.Sprintf("culled: no activity for %s (spec.idleTimeout %s; last activity %s, from the %s); the workspace %s is kept. "+
		"Start it again with `kubectl kiln notebook start %s` or spec.stopped: false",
		d.idle.Round(time.Second), timeout, d.last.UTC().Format(time.RFC3339), sourceName(d.source), workspaceClaimName(nb), nb.Name)
	if d.last.Before(in.started) {
		msg = fmt.Sprintf("culled: no activity for %s since it started (spec.idleTimeout %s); the workspace %s is kept. "+
			"Start it again with `kubectl kiln notebook start %s` or spec.stopped: false",
			d.idle.Round(time.Second), timeout, workspaceClaimName(nb), nb.Name)
	}
	r.setCondition(nb, v1alpha1.NotebookConditionStopped, metav1.ConditionTrue, v1alpha1.ReasonCulled, msg)
	ctrl.LoggerFrom(ctx).Info("culled idle notebook", "idle", d.idle.String(), "lastActivity", d.last, "source", d.source)
	return 0, nil
}

func sourceName(source string) string {
	if source == "annotation" {
		return v1alpha1.AnnotationLastActivity + " annotation"
	}
	return "server's /api/status"
}

// activityCondition says where activity comes from, or why it is unknown. Its
// messages carry no times, so a poll that learns nothing new writes nothing.
func (r *Reconciler) activityCondition(nb *v1alpha1.Notebook, in cullInput, serverErr, annotationErr error) {
	const t = v1alpha1.NotebookConditionActivityKnown
	switch {
	case in.server != nil && in.annotation != nil:
		r.setCondition(nb, t, metav1.ConditionTrue, v1alpha1.ReasonServerStatus,
			fmt.Sprintf("from the server's /api/status and the %s annotation, whichever is later", v1alpha1.AnnotationLastActivity))
	case in.server != nil:
		r.setCondition(nb, t, metav1.ConditionTrue, v1alpha1.ReasonServerStatus, "from the server's /api/status")
	case in.annotation != nil:
		r.setCondition(nb, t, metav1.ConditionTrue, v1alpha1.ReasonAnnotation,
			fmt.Sprintf("from the %s annotation; the server's status could not be read: %v", v1alpha1.AnnotationLastActivity, serverErr))
	default:
		why := fmt.Sprintf("cannot read the server's activity (%v)", serverErr)
		if annotationErr != nil {
			why += "; " + annotationErr.Error()
		}
		r.setCondition(nb, t, metav1.ConditionFalse, v1alpha1.ReasonServerUnreached,
			why+"; the notebook is not culled while its activity is unknown")
	}
}

// observe mirrors the StatefulSet and its pod into the Ready condition.
func (r *Reconciler) observe(ctx context.Context, nb *v1alpha1.Notebook, sts *appsv1.StatefulSet) error {
	s := &nb.Status
	if nb.Spec.Stopped {
		s.Ready = false
		c := apimeta.FindStatusCondition(s.Conditions, v1alpha1.NotebookConditionStopped)
		if c == nil || c.Status != metav1.ConditionTrue || (c.Reason != v1alpha1.ReasonCulled && c.Reason != v1alpha1.ReasonStoppedBySpec) {
			r.setCondition(nb, v1alpha1.NotebookConditionStopped, metav1.ConditionTrue, v1alpha1.ReasonStoppedBySpec,
				fmt.Sprintf("spec.stopped is true; the workspace %s is kept. Start it with `kubectl kiln notebook start %s` or spec.stopped: false",
					workspaceClaimName(nb), nb.Name))
			c = apimeta.FindStatusCondition(s.Conditions, v1alpha1.NotebookConditionStopped)
		}
		r.setCondition(nb, v1alpha1.NotebookConditionReady, metav1.ConditionFalse, c.Reason, "stopped, scaled to zero")
		return nil
	}
	if sts != nil && sts.Status.ReadyReplicas > 0 {
		s.Ready = true
		r.setCondition(nb, v1alpha1.NotebookConditionReady, metav1.ConditionTrue, v1alpha1.ReasonPodReady,
			fmt.Sprintf("serving at %s (token in Secret %s)", s.URL, s.TokenSecretName))
		if c := apimeta.FindStatusCondition(s.Conditions, v1alpha1.NotebookConditionGPUsAvailable); c != nil && c.Status != metav1.ConditionTrue {
			// A node with the GPUs joined after all.
			r.setCondition(nb, v1alpha1.NotebookConditionGPUsAvailable, metav1.ConditionTrue, v1alpha1.ReasonGPUNodesFound, "the pod runs on a node with its GPUs")
		}
		return nil
	}
	s.Ready = false
	msg, err := r.podProblem(ctx, nb)
	if err != nil {
		return err
	}
	r.setCondition(nb, v1alpha1.NotebookConditionReady, metav1.ConditionFalse, v1alpha1.ReasonPodStarting, msg)
	return r.checkGPUs(ctx, nb)
}

// podProblem says what the notebook's pod waits for.
func (r *Reconciler) podProblem(ctx context.Context, nb *v1alpha1.Notebook) (string, error) {
	name := nb.Name + "-0"
	pod := &corev1.Pod{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: nb.Namespace, Name: name}, pod)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("waiting for pod %s to be created", name), nil
	case err != nil:
		return "", fmt.Errorf("reading pod %s: %w", name, err)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message != "" {
			return fmt.Sprintf("pod %s cannot be scheduled: %s", name, c.Message), nil
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			return fmt.Sprintf("pod %s: %s: %s", name, w.Reason, w.Message), nil
		}
	}
	return fmt.Sprintf("waiting for pod %s to become ready", name), nil
}

// checkGPUs warns, while the pod waits, when no node has the GPUs it asks for.
// The pod stays: a cluster autoscaler sees it and may add such a node.
func (r *Reconciler) checkGPUs(ctx context.Context, nb *v1alpha1.Notebook) error {
	if nb.Spec.Resources.GPUs == 0 {
		return nil
	}
	var nodes corev1.NodeList
	if err := r.APIReader.List(ctx, &nodes); err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	if w := validation.NotebookGPUWarning(nb, nodes.Items); w != "" {
		r.setCondition(nb, v1alpha1.NotebookConditionGPUsAvailable, metav1.ConditionFalse, v1alpha1.ReasonNoGPUNodes, w)
		return nil
	}
	r.setCondition(nb, v1alpha1.NotebookConditionGPUsAvailable, metav1.ConditionTrue, v1alpha1.ReasonGPUNodesFound,
		fmt.Sprintf("nodes with %d GPU(s) exist", nb.Spec.Resources.GPUs))
	return nil
}

func (r *Reconciler) setCondition(nb *v1alpha1.Notebook, t string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&nb.Status.Conditions, metav1.Condition{
		Type:               t,
		Status:             status,
		Reason:             reason,
		Message:            msg,
		ObservedGeneration: nb.Generation,
		LastTransitionTime: metav1.NewTime(r.now()),
	})
}

// stateOf sums the conditions up in one word for the printer column.
func stateOf(conds []metav1.Condition) v1alpha1.NotebookState {
	if c := apimeta.FindStatusCondition(conds, v1alpha1.NotebookConditionStopped); c != nil && c.Status == metav1.ConditionTrue {
		if c.Reason == v1alpha1.ReasonCulled {
			return v1alpha1.NotebookCulled
		}
		return v1alpha1.NotebookStopped
	}
	c := apimeta.FindStatusCondition(conds, v1alpha1.NotebookConditionReady)
	switch {
	case c == nil:
		return v1alpha1.NotebookPending
	case c.Status == metav1.ConditionTrue:
		return v1alpha1.NotebookReady
	case c.Reason == v1alpha1.ReasonPodStarting:
		return v1alpha1.NotebookStarting
	}
	return v1alpha1.NotebookPending
}

// maxEventNote is the events.k8s.io limit on an Event's note.
const maxEventNote = 1024

// recordTransitions emits an Event for each condition whose status or reason
// changed. A pod that is starting is not news; its readiness is.
func (r *Reconciler) recordTransitions(nb *v1alpha1.Notebook, before []metav1.Condition) {
	for _, c := range nb.Status.Conditions {
		old := apimeta.FindStatusCondition(before, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason {
			continue
		}
		if c.Reason == v1alpha1.ReasonPodStarting || c.Type == v1alpha1.NotebookConditionGPUsAvailable && c.Status == metav1.ConditionTrue && old == nil {
			continue
		}
		eventType := corev1.EventTypeNormal
		switch c.Reason {
		case v1alpha1.ReasonVolumeNotFound, v1alpha1.ReasonRenderFailed, v1alpha1.ReasonNameConflict,
			v1alpha1.ReasonNoGPUNodes, v1alpha1.ReasonServerUnreached:
			eventType = corev1.EventTypeWarning
		}
		note := c.Message
		if len(note) > maxEventNote {
			note = note[:maxEventNote-3] + "..."
		}
		r.Recorder.Eventf(nb, nil, eventType, c.Reason, c.Type, "%s", note)
	}
}
