// Package notebook reconciles Notebooks: it checks the volumes a notebook
// mounts, applies the rendered StatefulSet, Service, workspace claim and token
// Secret, mirrors the pod's readiness into status, and stops a notebook nobody
// used for spec.idleTimeout.
//
// Culling writes spec.stopped: true, the same field a user sets to stop a
// notebook, so starting it again is one field (or `kubectl kiln notebook
// start`), and a manager that dies right after the write still scales the
// StatefulSet to zero on its next reconcile.
package notebook

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/tokens"
	"kiln.dev/kiln/internal/validation"
)

// volumeRetry is how often a notebook waiting for a volume looks again; a new
// claim in its namespace wakes it sooner.
const volumeRetry = time.Minute

// FieldOwner is the field manager of what the controller applies.
const FieldOwner = "kiln-notebook"

// Reconciler reconciles Notebooks.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader lists Nodes, rarely (while a GPU notebook waits for its pod),
	// which does not justify caching every Node.
	APIReader client.Reader
	// Recorder emits Events on the Notebook.
	Recorder events.EventRecorder
	// Clock stamps conditions and measures idle time.
	Clock clock.PassiveClock
	// Activity reads the notebook server's activity; nil means Jupyter's
	// /api/status through the Notebook's Service.
	Activity ActivitySource
	// RuntimeClassName is set on GPU pods when the cluster needs one.
	RuntimeClassName string
	// Tokens derives the notebook's access token, so the controller never reads the
	// token Secret back: reading Secrets in tenant namespaces would need the right to
	// read all of them (see package tokens).
	Tokens tokens.Source
	// Inject applies the pod webhook's injection (sidecars, and the annotation
	// that says it was applied) to the StatefulSet's pod template, so the pod is
	// created complete without a call to Kiln's pod webhook: a notebook restarts
	// and reschedules while the manager is down. nil leaves the pod to the webhook.
	Inject func(*corev1.PodTemplateSpec)
	// Policy is what the administrator lets notebooks ask of the hosts; it is
	// checked again here, not only at admission, so a notebook created while the
	// webhook was off still cannot.
	Policy validation.Policy
}

// Verbs are exactly those the controller uses; the cached client needs list and
// watch, never get. Culling patches the Notebook's spec.stopped.
//
// +kubebuilder:rbac:groups=kiln.dev,resources=notebooks,verbs=list;watch;patch
// +kubebuilder:rbac:groups=kiln.dev,resources=notebooks/status,verbs=patch
// +kubebuilder:rbac:groups=kiln.dev,resources=notebooks/finalizers,verbs=update
// +kubebuilder:rbac:groups=kiln.dev,resources=trainingjobs,verbs=list;watch
// Server-side apply is a patch, and the API server authorises "create" as well
// when the apply creates the object.
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=list;watch;create
// The token Secret is created, never read or watched: its token is derived again when needed.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=list
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the controller. Besides its own children, a new
// claim wakes the notebooks of its namespace that wait for a volume.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Activity == nil {
		r.Activity = &JupyterStatus{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Notebook{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(r.waitingForVolumes)).
		Named("notebook").
		Complete(r)
}

// waitingForVolumes maps a claim to the notebooks in its namespace that wait for a volume.
func (r *Reconciler) waitingForVolumes(ctx context.Context, obj client.Object) []reconcile.Request {
	var list v1alpha1.NotebookList
	if err := r.Client.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, nb := range list.Items {
		if c := apimeta.FindStatusCondition(nb.Status.Conditions, v1alpha1.NotebookConditionReady); c != nil && c.Reason == v1alpha1.ReasonVolumeNotFound {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: nb.Namespace, Name: nb.Name}})
		}
	}
	return out
}

// Reconcile runs the steps against a copy of the Notebook and writes the status
// they produced, once.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	nb := &v1alpha1.Notebook{}
	if err := r.Client.Get(ctx, req.NamespacedName, nb); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !nb.DeletionTimestamp.IsZero() {
		// Owner references hand the children to the garbage collector; a
		// retained workspace has none and stays.
		return ctrl.Result{}, nil
	}
	before := nb.DeepCopy()
	result, err := r.steps(ctx, nb)
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		ctrl.LoggerFrom(ctx).V(1).Info("namespace is terminating; not retrying", "reason", err.Error())
		err = nil
	}
	nb.Status.ObservedGeneration = nb.Generation
	nb.Status.State = stateOf(nb.Status.Conditions)
	if werr := r.writeStatus(ctx, before, nb); werr != nil {
		return ctrl.Result{}, errors.Join(err, werr)
	}
	return result, err
}

func (r *Reconciler) steps(ctx context.Context, nb *v1alpha1.Notebook) (ctrl.Result, error) {
	s := &nb.Status
	s.URL = notebookURL(nb)
	s.TokenSecretName = tokenSecretName(nb)
	s.WorkspaceClaimName = workspaceClaimName(nb)

	if ok, err := r.checkVolumes(ctx, nb); err != nil || !ok {
		return ctrl.Result{RequeueAfter: volumeRetry}, err
	}
	token, err := r.token(ctx, nb)
	if err != nil {
		return ctrl.Result{}, err
	}
	sts, err := r.statefulSet(ctx, nb)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.started(nb)
	var after time.Duration
	if !nb.Spec.Stopped {
		if after, err = r.cull(ctx, nb, sts, token); err != nil {
			return ctrl.Result{}, err
		}
	}
	if ok, err := r.applyChildren(ctx, nb, token, sts == nil); err != nil || !ok {
		return ctrl.Result{}, err
	}
	// The cached StatefulSet's status is what the pod did; one just applied
	// has none yet, and its watch event brings it.
	if err := r.observe(ctx, nb, sts); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// writeStatus patches the status when the steps changed it. The patch carries the
// resourceVersion read, so a concurrent writer is never overwritten.
func (r *Reconciler) writeStatus(ctx context.Context, before, nb *v1alpha1.Notebook) error {
	if equality.Semantic.DeepEqual(before.Status, nb.Status) {
		return nil
	}
	// Culling patched the spec in this reconcile; the status read with it is
	// still the stored one, at the version that patch returned.
	base := before.DeepCopy()
	base.ResourceVersion = nb.ResourceVersion
	err := r.Client.Status().Patch(ctx, nb, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		ctrl.LoggerFrom(ctx).V(1).Info("status not written; will reconcile the newer object", "reason", err.Error())
		return nil
	case err != nil:
		return fmt.Errorf("writing status: %w", err)
	}
	r.recordTransitions(nb, before.Status.Conditions)
	return nil
}
