// Package modelserver reconciles ModelServers: it renders the Deployments,
// Services, autoscalers, disruption budgets and (with Gateway API) the
// HTTPRoute of a ModelServer, applies them with server-side apply, deletes the
// ones a new spec no longer needs, and reports what the children say in status.
//
// A version whose model is not ready to serve (a trainingjob:// model whose
// TrainingJob has not succeeded) is not rolled out: the stable one keeps what it
// had, a canary is left out, and the Ready condition says why.
package modelserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render/serving"
	"kiln.dev/kiln/internal/validation"
)

// FieldOwner is the server-side apply field manager of everything Kiln applies.
const FieldOwner = client.FieldOwner("kiln")

// recheckGateway is how often a canary split by replica ratio looks again for
// Gateway API, which may be installed later.
const recheckGateway = time.Minute

// Reconciler reconciles ModelServers.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader lists HTTPRoutes, which are not cached: their kind may not exist.
	APIReader client.Reader
	// Recorder emits Events on the ModelServer.
	Recorder events.EventRecorder
	// Clock stamps condition transitions.
	Clock clock.PassiveClock
	// Namespace is Kiln's own, where the kiln-serving ConfigMap is.
	Namespace string
	// FetchImage downloads object-storage models when the ConfigMap names none.
	FetchImage string
	// Gateway says whether the cluster serves Gateway API HTTPRoutes.
	Gateway *GatewayDetector
	// Inject applies the pod webhook's injection (sidecars, and the annotation
	// that says it was applied) to the Deployments' pod templates, so serving pods
	// are created complete without a call to Kiln's pod webhook: they scale and
	// reschedule while the manager is down. nil leaves the pods to the webhook.
	Inject func(*corev1.PodTemplateSpec)
	// Policy is what the administrator lets servers ask of the hosts; it is
	// checked again here, not only at admission, so a ModelServer created while
	// the webhook was off still cannot.
	Policy validation.Policy
}

// +kubebuilder:rbac:groups=kiln.dev,resources=modelservers,verbs=list;watch
// +kubebuilder:rbac:groups=kiln.dev,resources=modelservers/status,verbs=patch
// +kubebuilder:rbac:groups=kiln.dev,resources=modelservers/finalizers,verbs=update
// +kubebuilder:rbac:groups=kiln.dev,resources=trainingjobs,verbs=list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=list;watch;create;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=list;watch;create;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;create;patch;delete
// +kubebuilder:rbac:groups="",resources=pods;persistentvolumeclaims;configmaps,verbs=list;watch

// SetupWithManager registers the controller. Besides its children, a
// ModelServer is woken by its pods (image pulls, crash loops), by the
// TrainingJobs it serves, and by a change to the serving configuration.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ModelServer{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(byLabel)).
		Watches(&v1alpha1.TrainingJob{}, handler.EnqueueRequestsFromMapFunc(r.servingTrainingJob)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.allOnConfigChange)).
		Named("modelserver").
		Complete(r)
}

func byLabel(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[v1alpha1.LabelModelServer]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

func (r *Reconciler) servingTrainingJob(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.ModelServerList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing ModelServers for a TrainingJob")
		return nil
	}
	uri := "trainingjob://" + o.GetName()
	var out []reconcile.Request
	for _, ms := range list.Items {
		if ms.Spec.Model.URI == uri || (ms.Spec.Canary != nil && ms.Spec.Canary.Model != nil && ms.Spec.Canary.Model.URI == uri) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ms)})
		}
	}
	return out
}

func (r *Reconciler) allOnConfigChange(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() != r.Namespace || o.GetName() != serving.ConfigMapName {
		return nil
	}
	var list v1alpha1.ModelServerList
	if err := r.Client.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing ModelServers after a serving configuration change")
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, ms := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ms)})
	}
	return out
}

// Reconcile applies the children and writes the status they produced, once.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ms := &v1alpha1.ModelServer{}
	if err := r.Client.Get(ctx, req.NamespacedName, ms); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ms.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // owner references hand every child to the garbage collector
	}
	before := ms.DeepCopy()
	result, err := r.steps(ctx, ms)
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		err = nil
	}
	ms.Status.ObservedGeneration = ms.Generation
	if werr := r.writeStatus(ctx, before, ms); werr != nil {
		return ctrl.Result{}, errors.Join(err, werr)
	}
	return result, err
}

func (r *Reconciler) steps(ctx context.Context, ms *v1alpha1.ModelServer) (ctrl.Result, error) {
	ms.Status.URL = serving.URL(ms)
	cfg, err := r.config(ctx)
	if err != nil {
		r.notReady(ms, v1alpha1.ModelServerReady, v1alpha1.ReasonInvalidSpec, err.Error())
		return ctrl.Result{}, nil
	}
	gateway, err := r.Gateway.Installed()
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("looking for Gateway API: %w", err)
	}

	// A version whose model cannot be served yet is not rolled out.
	stableProblem, err := r.modelProblem(ctx, ms, ms.Spec.Model)
	if err != nil {
		return ctrl.Result{}, err
	}
	if stableProblem != nil {
		r.notReady(ms, v1alpha1.ModelServerReady, stableProblem.reason, stableProblem.message)
		return ctrl.Result{}, nil
	}
	desired := ms.DeepCopy()
	var canaryProblem *problem
	if c := ms.Spec.Canary; c != nil && c.Model != nil {
		if canaryProblem, err = r.modelProblem(ctx, ms, *c.Model); err != nil {
			return ctrl.Result{}, err
		}
		if canaryProblem != nil {
			desired.Spec.Canary = nil
		}
	}

	if errs := r.Policy.ModelServerSpec(&ms.Spec, field.NewPath("spec")); len(errs) > 0 {
		r.notReady(ms, v1alpha1.ModelServerReady, v1alpha1.ReasonPolicyDenied, errs.ToAggregate().Error())
		return ctrl.Result{}, nil
	}
	objs, err := serving.ModelServer(desired, serving.Options{Config: cfg, GatewayAPI: gateway, OwnerReferences: true})
	if err == nil && r.Inject != nil {
		for _, t := range []*serving.Track{objs.Stable, objs.Canary} {
			if t != nil {
				r.Inject(&t.Deployment.Spec.Template)
			}
		}
	}
	if err != nil {
		reason := v1alpha1.ReasonRenderFailed
		var unknown *serving.UnknownPresetError
		var noFetch *serving.NoFetchImageError
		switch {
		case errors.As(err, &unknown):
			reason = v1alpha1.ReasonUnknownPreset
		case errors.As(err, &noFetch):
			reason = v1alpha1.ReasonModelDownloadFailed
		}
		r.notReady(ms, v1alpha1.ModelServerReady, reason, err.Error())
		return ctrl.Result{}, nil
	}
	if err := r.apply(ctx, objs); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.prune(ctx, ms, objs, gateway); err != nil {
		return ctrl.Result{}, err
	}
	routePending, err := r.observe(ctx, ms, objs, canaryProblem)
	if err != nil {
		return ctrl.Result{}, err
	}
	// Without Gateway API, look for it again; with it, look again until a parent
	// accepts the route (routes are not watched: their kind may not exist).
	if ms.Spec.Canary != nil && (!gateway || routePending) {
		return ctrl.Result{RequeueAfter: recheckGateway}, nil
	}
	return ctrl.Result{}, nil
}

// config is the serving configuration: the kiln-serving ConfigMap in Kiln's
// namespace, or the built-in defaults when there is none; the manager's fetch
// image stands in when it names none.
func (r *Reconciler) config(ctx context.Context) (serving.Config, error) {
	c, err := r.servingConfig(ctx)
	c.FetchImage = cmp.Or(c.FetchImage, r.FetchImage)
	return c, err
}

func (r *Reconciler) servingConfig(ctx context.Context) (serving.Config, error) {
	cm := &corev1.ConfigMap{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: serving.ConfigMapName}, cm)
	switch {
	case apierrors.IsNotFound(err):
		return serving.DefaultConfig(), nil
	case err != nil:
		return serving.Config{}, fmt.Errorf("reading ConfigMap %s/%s: %w", r.Namespace, serving.ConfigMapName, err)
	}
	c, err := serving.ParseConfig([]byte(cm.Data[serving.ConfigKey]))
	if err != nil {
		return serving.Config{}, fmt.Errorf("ConfigMap %s/%s: %w", r.Namespace, serving.ConfigMapName, err)
	}
	return c, nil
}

// apply server-side applies every rendered object. A Deployment an autoscaler
// governs keeps the autoscaler's replica count (clamped to the new bounds), so
// applying never undoes a scale-up.
func (r *Reconciler) apply(ctx context.Context, objs serving.Objects) error {
	for _, t := range []*serving.Track{objs.Stable, objs.Canary} {
		if t == nil || t.HPA == nil {
			continue
		}
		current := &appsv1.Deployment{}
		err := r.Client.Get(ctx, client.ObjectKeyFromObject(t.Deployment), current)
		if err == nil && current.Spec.Replicas != nil {
			t.Deployment.Spec.Replicas = ptr.To(min(max(*current.Spec.Replicas, t.MinReplicas), t.MaxReplicas))
		} else if client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	for _, obj := range objs.List() {
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return fmt.Errorf("converting %s %s: %w", kind, obj.GetName(), err)
		}
		// Status is the children's own; a rendered object has none worth sending.
		delete(u, "status")
		ac := client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: u})
		if err := r.Client.Apply(ctx, ac, FieldOwner, client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s: %w", kind, obj.GetName(), err)
		}
	}
	return nil
}

// prune deletes the children this rendering does not have: the canary's after a
// promotion or rollback, an autoscaler whose bounds became equal, the route and
// per-version Services without a canary or Gateway API.
func (r *Reconciler) prune(ctx context.Context, ms *v1alpha1.ModelServer, objs serving.Objects, gateway bool) error {
	want := map[string]bool{}
	for _, o := range objs.List() {
		want[o.GetObjectKind().GroupVersionKind().Kind+"/"+o.GetName()] = true
	}
	mine := []client.ListOption{client.InNamespace(ms.Namespace), client.MatchingLabels{v1alpha1.LabelModelServer: ms.Name}}
	lists := []struct {
		kind string
		list client.ObjectList
		r    client.Reader
	}{
		{"Deployment", &appsv1.DeploymentList{}, r.Client},
		{"Service", &corev1.ServiceList{}, r.Client},
		{"HorizontalPodAutoscaler", &autoscalingv2.HorizontalPodAutoscalerList{}, r.Client},
		{"PodDisruptionBudget", &policyv1.PodDisruptionBudgetList{}, r.Client},
	}
	if gateway {
		lists = append(lists, struct {
			kind string
			list client.ObjectList
			r    client.Reader
		}{"HTTPRoute", &gatewayv1.HTTPRouteList{}, r.APIReader})
	}
	for _, l := range lists {
		if err := l.r.List(ctx, l.list, mine...); err != nil {
			return fmt.Errorf("listing %ss: %w", l.kind, err)
		}
		var stale []client.Object
		_ = apimeta.EachListItem(l.list, func(o runtime.Object) error {
			obj := o.(client.Object)
			if !want[l.kind+"/"+obj.GetName()] && metav1.IsControlledBy(obj, ms) && obj.GetDeletionTimestamp().IsZero() {
				stale = append(stale, obj)
			}
			return nil
		})
		for _, obj := range stale {
			err := r.Client.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground))
			if client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting %s %s: %w", l.kind, obj.GetName(), err)
			}
			ctrl.LoggerFrom(ctx).Info("deleted", "kind", l.kind, "object", obj.GetName())
		}
	}
	return nil
}

// writeStatus patches the status when the steps changed it, with the
// resourceVersion read, so a concurrent writer is never overwritten.
func (r *Reconciler) writeStatus(ctx context.Context, before, ms *v1alpha1.ModelServer) error {
	if equality.Semantic.DeepEqual(before.Status, ms.Status) {
		return nil
	}
	err := r.Client.Status().Patch(ctx, ms, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		ctrl.LoggerFrom(ctx).V(1).Info("status not written; will reconcile the newer object", "reason", err.Error())
		return nil
	case err != nil:
		return fmt.Errorf("writing status: %w", err)
	}
	r.recordTransitions(ms, before.Status.Conditions)
	return nil
}

func (r *Reconciler) setCondition(ms *v1alpha1.ModelServer, t string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&ms.Status.Conditions, metav1.Condition{
		Type: t, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: ms.Generation, LastTransitionTime: metav1.NewTime(r.Clock.Now()),
	})
}

func (r *Reconciler) notReady(ms *v1alpha1.ModelServer, t, reason, msg string) {
	r.setCondition(ms, t, metav1.ConditionFalse, reason, msg)
}

const maxEventNote = 1024

// recordTransitions emits an Event for each condition that changed.
func (r *Reconciler) recordTransitions(ms *v1alpha1.ModelServer, before []metav1.Condition) {
	for _, c := range ms.Status.Conditions {
		old := apimeta.FindStatusCondition(before, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason {
			continue
		}
		if c.Reason == v1alpha1.ReasonRollingOut {
			continue // progress, not news
		}
		eventType := corev1.EventTypeNormal
		if c.Status != metav1.ConditionTrue {
			eventType = corev1.EventTypeWarning
		}
		note := c.Message
		if len(note) > maxEventNote {
			note = note[:maxEventNote-3] + "..."
		}
		r.Recorder.Eventf(ms, nil, eventType, c.Reason, c.Type, "%s", note)
	}
}

// trainingJobName is the TrainingJob of a trainingjob:// URI.
func trainingJobName(uri string) (string, bool) {
	return strings.CutPrefix(uri, "trainingjob://")
}
