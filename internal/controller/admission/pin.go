package admission

import (
	"context"
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
)

// Pinner pins each gated pod of an admitted Job to the node its completion
// index was placed on, and lifts the gate. All pods of an Indexed Job share one
// template, so the node of each index can only be set on the pod itself; the
// API server allows narrowing node affinity while a pod is gated, and judges
// the write against the gated pod, so pinning and lifting the gate are one
// patch and no pod is ever free to schedule unpinned.
type Pinner struct {
	// Client reads Kiln's pods from the cache and patches them.
	Client client.Client
	// APIReader reads the pod's Job live: the pod may be newer than the cached
	// Job, whose placement could be that of an earlier admission.
	APIReader client.Reader
}

// SetupWithManager watches Kiln's pods that carry the placement gate.
func (p *Pinner) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("placement-pin").
		For(&corev1.Pod{}, builder.WithPredicates(kilnOnly(), predicate.NewPredicateFuncs(func(o client.Object) bool {
			return gated(&o.(*corev1.Pod).Spec)
		}))).
		Complete(p)
}

// Reconcile pins one pod. A pod whose Job is not admitted (yet, or any more)
// is left gated: it runs only where a placement puts it.
func (p *Pinner) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := p.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	owner := metav1.GetControllerOf(pod)
	if !gated(&pod.Spec) || !pod.DeletionTimestamp.IsZero() || owner == nil || owner.Kind != "Job" {
		return ctrl.Result{}, nil
	}
	job := &batchv1.Job{}
	if err := p.APIReader.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: owner.Name}, job); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if job.UID != owner.UID || suspended(job) {
		// The Job is gone or stopping its pods; this one is about to go too.
		return ctrl.Result{}, nil
	}
	nodes := placement.DecodePlacement(job.Annotations[v1alpha1.AnnotationPlacement])
	i, ok := completionIndex(pod)
	if !ok || i >= len(nodes) {
		ctrl.LoggerFrom(ctx).Info("pod has no node in its Job's placement; leaving it gated", "job", job.Name, "placement", nodes)
		return ctrl.Result{}, nil
	}
	before := pod.DeepCopy()
	pin(&pod.Spec, nodes[i])
	if err := p.Client.Patch(ctx, pod, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, fmt.Errorf("pinning pod %s to node %s: %w", pod.Name, nodes[i], err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("pinned pod", "node", nodes[i], "index", i)
	return ctrl.Result{}, nil
}

// pin requires the node by name in every required node affinity term (terms
// are alternatives, so each must be narrowed; the user's own requirements
// stay), and removes Kiln's gate. Other gates stay for their owners.
func pin(spec *corev1.PodSpec, node string) {
	byName := corev1.NodeSelectorRequirement{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	na := spec.Affinity.NodeAffinity
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil || len(na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms) == 0 {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{}}}
	}
	terms := na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	for i := range terms {
		terms[i].MatchFields = append(terms[i].MatchFields, byName)
	}
	spec.SchedulingGates = slices.DeleteFunc(spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool {
		return g.Name == v1alpha1.PlacementGate
	})
	if len(spec.SchedulingGates) == 0 {
		spec.SchedulingGates = nil
	}
}
