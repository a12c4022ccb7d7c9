package notebook

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/tokens"
)

func notebookURL(nb *v1alpha1.Notebook) string        { return render.NotebookURL(nb) }
func tokenSecretName(nb *v1alpha1.Notebook) string    { return render.NotebookTokenSecretName(nb.Name) }
func workspaceClaimName(nb *v1alpha1.Notebook) string { return render.WorkspaceClaimName(nb.Name) }

// checkVolumes finds the claim behind every spec.volumes entry. A missing one
// keeps the notebook from starting, with a Ready condition that says which: a
// pod that mounts a missing claim would only hang in Pending saying less. It
// reports false when one is missing.
func (r *Reconciler) checkVolumes(ctx context.Context, nb *v1alpha1.Notebook) (bool, error) {
	var missing []string
	for i, v := range nb.Spec.Volumes {
		what := fmt.Sprintf("spec.volumes[%d] (%s)", i, v.URI)
		claim, _, err := render.NotebookVolumeClaim(v.URI)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s: %v", what, err))
			continue
		}
		if job, ok := strings.CutPrefix(v.URI, "trainingjob://"); ok {
			job = strings.TrimSuffix(job, "/")
			tj := &v1alpha1.TrainingJob{}
			err := r.Client.Get(ctx, client.ObjectKey{Namespace: nb.Namespace, Name: job}, tj)
			switch {
			case apierrors.IsNotFound(err):
				missing = append(missing, fmt.Sprintf("%s: no TrainingJob %s in namespace %s", what, job, nb.Namespace))
				continue
			case err != nil:
				return false, fmt.Errorf("reading TrainingJob %s: %w", job, err)
			case tj.Spec.Output == nil:
				missing = append(missing, fmt.Sprintf("%s: TrainingJob %s has no spec.output volume to mount", what, job))
				continue
			}
		}
		pvc := &corev1.PersistentVolumeClaim{}
		err = r.Client.Get(ctx, client.ObjectKey{Namespace: nb.Namespace, Name: claim}, pvc)
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, fmt.Sprintf("%s: no PersistentVolumeClaim %s in namespace %s", what, claim, nb.Namespace))
		case err != nil:
			return false, fmt.Errorf("reading PersistentVolumeClaim %s: %w", claim, err)
		}
	}
	if len(missing) == 0 {
		return true, nil
	}
	msg := strings.Join(missing, "; ") + "; the notebook starts once it exists"
	r.setCondition(nb, v1alpha1.NotebookConditionReady, metav1.ConditionFalse, v1alpha1.ReasonVolumeNotFound, msg)
	nb.Status.Ready = false
	return false, nil
}

// token is the notebook's access token, derived from its namespace, name and UID:
// the same on every reconcile and replica, and never read from the tenant's Secret.
func (r *Reconciler) token(ctx context.Context, nb *v1alpha1.Notebook) (string, error) {
	if r.Tokens == nil {
		return "", fmt.Errorf("the notebook controller has no token source")
	}
	token, err := r.Tokens.Token(ctx, tokens.PurposeNotebook, nb.Namespace, nb.Name, nb.UID)
	if err != nil {
		return "", fmt.Errorf("deriving the notebook token: %w", err)
	}
	return token, nil
}

// statefulSet is the stored StatefulSet, or nil before it exists.
func (r *Reconciler) statefulSet(ctx context.Context, nb *v1alpha1.Notebook) (*appsv1.StatefulSet, error) {
	sts := &appsv1.StatefulSet{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: nb.Namespace, Name: nb.Name}, sts)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the StatefulSet: %w", err)
	}
	return sts, nil
}

// applyChildren renders the notebook and brings the cluster in line. The token
// Secret and the workspace claim are created once and never changed: the token
// must not change under a user, and a claim's spec is mostly immutable (a
// retained workspace from an earlier Notebook of the same name is mounted as it
// is). The Service and StatefulSet are server-side applied, so changes to the
// spec (stopped, image, env, resources) reach them and fields others set stay.
// It reports false when the notebook cannot be rendered or its names are taken,
// having said why in status.
//
// The token Secret is created only while the StatefulSet does not exist (fresh): a
// create that finds it answers AlreadyExists, and one per reconcile of every
// notebook would be a request each for nothing.
func (r *Reconciler) applyChildren(ctx context.Context, nb *v1alpha1.Notebook, token string, fresh bool) (bool, error) {
	if errs := r.Policy.NotebookSpec(&nb.Spec, field.NewPath("spec")); len(errs) > 0 {
		r.setCondition(nb, v1alpha1.NotebookConditionReady, metav1.ConditionFalse, v1alpha1.ReasonPolicyDenied, errs.ToAggregate().Error())
		nb.Status.Ready = false
		return false, nil
	}
	objs, err := render.Notebook(nb, render.NotebookOptions{OwnerReferences: true, Token: token, RuntimeClassName: r.RuntimeClassName})
	if err != nil {
		r.setCondition(nb, v1alpha1.NotebookConditionReady, metav1.ConditionFalse, v1alpha1.ReasonRenderFailed, err.Error())
		nb.Status.Ready = false
		return false, nil
	}
	if r.Inject != nil {
		r.Inject(&objs.StatefulSet.Spec.Template)
	}
	once := []client.Object{objs.Workspace}
	if fresh {
		once = append(once, objs.Secret)
	}
	for _, obj := range once {
		if err := r.createIfAbsent(ctx, obj); err != nil {
			return false, err
		}
	}
	for _, obj := range []client.Object{objs.Service, objs.StatefulSet} {
		if ok, err := r.apply(ctx, nb, obj); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (r *Reconciler) createIfAbsent(ctx context.Context, obj client.Object) error {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if _, secret := obj.(*corev1.Secret); !secret {
		// Secrets are not cached and may not be read (see token): creating one that
		// exists is the check, and answers AlreadyExists.
		err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		if !apierrors.IsNotFound(err) {
			return err
		}
	}
	err := r.Client.Create(ctx, obj, client.FieldOwner(FieldOwner))
	switch {
	case apierrors.IsAlreadyExists(err):
		return nil
	case err != nil:
		return fmt.Errorf("creating %s %s: %w", kind, obj.GetName(), err)
	}
	ctrl.LoggerFrom(ctx).Info("created", "kind", kind, "object", obj.GetName())
	return nil
}

// apply server-side applies obj, unless an object of that name exists that this
// Notebook does not control: taking over someone else's Service would break it.
// It reports false in that case, having said why in status.
func (r *Reconciler) apply(ctx context.Context, nb *v1alpha1.Notebook, obj client.Object) (bool, error) {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	existing := obj.DeepCopyObject().(client.Object)
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), existing)
	created := apierrors.IsNotFound(err)
	switch {
	case err == nil && !metav1.IsControlledBy(existing, nb):
		r.setCondition(nb, v1alpha1.NotebookConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNameConflict,
			fmt.Sprintf("a %s named %s exists that this Notebook does not own; delete it or choose another name", kind, obj.GetName()))
		nb.Status.Ready = false
		return false, nil
	case err != nil && !apierrors.IsNotFound(err):
		return false, fmt.Errorf("reading %s %s: %w", kind, obj.GetName(), err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return false, err
	}
	// Status is not the applier's, and the typed zero values (null timestamps)
	// would claim fields nobody sets.
	delete(u, "status")
	pruneNulls(u)
	ac := client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: u})
	if err := r.Client.Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("applying %s %s: %w", kind, obj.GetName(), err)
	}
	if created {
		ctrl.LoggerFrom(ctx).Info("created", "kind", kind, "object", obj.GetName())
	}
	return true, nil
}

func pruneNulls(m map[string]any) {
	for k, v := range m {
		switch val := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			pruneNulls(val)
		case []any:
			for _, item := range val {
				if im, ok := item.(map[string]any); ok {
					pruneNulls(im)
				}
			}
		}
	}
}
