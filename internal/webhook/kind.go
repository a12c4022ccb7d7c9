package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/validation"
)

// kinds is the one place where a Kiln kind's admission is registered: one line
// per kind. Its defaulter, validator and warner live in a file of their own.
func kinds() []registration {
	return []registration{
		register(&v1alpha1.TrainingJob{}, Kind[*v1alpha1.TrainingJob]{
			Resource: "trainingjobs",
			Default:  defaultTrainingJob,
			DefaultWhen: "has(object.spec.resources) && has(object.spec.resources.gpus) && object.spec.resources.gpus > 0 && " +
				"(!has(object.spec.resources.gpuResource) || object.spec.resources.gpuResource == '')",
			Validate:       withPush(validation.ValidateTrainingJob),
			ValidateUpdate: withPushUpdate(validation.ValidateTrainingJobUpdate),
			Admit:          admitTrainingJob,
			Policy: func(p validation.Policy, tj *v1alpha1.TrainingJob) field.ErrorList {
				return p.TrainingJobSpec(&tj.Spec, field.NewPath("spec"))
			},
		}),
		register(&v1alpha1.Notebook{}, Kind[*v1alpha1.Notebook]{
			Resource:       "notebooks",
			Validate:       validation.ValidateNotebook,
			ValidateUpdate: validation.ValidateNotebookUpdate,
			Admit:          admitNotebook,
			Policy: func(p validation.Policy, nb *v1alpha1.Notebook) field.ErrorList {
				return p.NotebookSpec(&nb.Spec, field.NewPath("spec"))
			},
		}),
		register(&v1alpha1.ModelServer{}, Kind[*v1alpha1.ModelServer]{
			Resource:       "modelservers",
			Validate:       withPush(validation.ValidateModelServer),
			ValidateUpdate: withPushUpdate(validation.ValidateModelServerUpdate),
			// No Admit: a trainingjob:// model that is missing or failed is the
			// controller's ModelNotFound condition, not a refusal that would tell any
			// creator whether TrainingJob X exists.
			Policy: func(p validation.Policy, ms *v1alpha1.ModelServer) field.ErrorList {
				return p.ModelServerSpec(&ms.Spec, field.NewPath("spec"))
			},
		}),
		register(&v1alpha1.Sweep{}, Kind[*v1alpha1.Sweep]{
			Resource: "sweeps",
			Validate: validation.Sweep,
			// Refused here rather than trial by trial.
			Policy: func(p validation.Policy, sw *v1alpha1.Sweep) field.ErrorList {
				return p.TrainingJobSpec(&sw.Spec.TrialTemplate, field.NewPath("spec", "trialTemplate"))
			},
		}),
	}
}

// Cluster is what admission may read of the cluster.
type Cluster struct {
	// Cached reads from the manager's informers: nodes, namespaces, StorageClasses.
	Cached client.Reader
	// Live reads from the API server. Admission reads no namespaced object the
	// request names (see admitTrainingJob); it is kept for handlers that need a
	// cluster-scoped fact the cache does not hold.
	Live client.Reader
	// Policy is what the administrator lets Kiln objects ask of the hosts.
	Policy validation.Policy
}

// Kind is the admission of one Kiln kind. Validate is required; the rest are optional.
type Kind[T client.Object] struct {
	// Resource is the kind's plural resource name, as in its CRD.
	Resource string
	// Default fills in, at creation, defaults that need the cluster or other fields
	// (the CRD defaults the rest). Its warnings say what it chose and why.
	Default func(ctx context.Context, c Cluster, obj T) (admission.Warnings, error)
	// DefaultWhen is a CEL condition on the object under which Default has anything to
	// do; the API server calls the defaulting webhook only then. Empty: always.
	DefaultWhen string
	// Validate checks an object on its own: the pure checks of internal/validation.
	Validate func(obj T) field.ErrorList
	// ValidateUpdate checks a change of the spec; Validate of the new object when nil.
	ValidateUpdate func(newObj, oldObj T) field.ErrorList
	// Admit checks, at creation, what needs the cluster. Errors refuse the object,
	// warnings advise; an error return means the cluster could not be read.
	Admit func(ctx context.Context, c Cluster, obj T) (field.ErrorList, admission.Warnings, error)
	// Policy lists what obj asks of the hosts beyond the administrator's policy
	// (host access, security contexts beyond the restricted profile). It runs at
	// creation and on every change of the spec.
	Policy func(p validation.Policy, obj T) field.ErrorList
}

// registration is a Kind with its type erased, so kinds() can list every kind.
type registration struct {
	resource string
	object   client.Object
	mutating bool
	// defaultWhen are the defaulting webhook's match conditions.
	defaultWhen []admissionregistrationv1.MatchCondition
	handlers    func(scheme *runtime.Scheme, c Cluster) (mutate, validate admission.Handler, err error)
}

func register[T client.Object](obj T, k Kind[T]) registration {
	var when []admissionregistrationv1.MatchCondition
	if k.DefaultWhen != "" {
		when = []admissionregistrationv1.MatchCondition{{Name: "has-defaults-to-choose", Expression: k.DefaultWhen}}
	}
	return registration{
		resource:    k.Resource,
		object:      obj,
		mutating:    k.Default != nil,
		defaultWhen: when,
		handlers: func(scheme *runtime.Scheme, c Cluster) (admission.Handler, admission.Handler, error) {
			gvk, err := apiutil.GVKForObject(obj, scheme)
			if err != nil {
				return nil, nil, err
			}
			h := &kindHandler[T]{kind: k, gk: gvk.GroupKind(), decoder: admission.NewDecoder(scheme), cluster: c}
			var mutate admission.Handler
			if k.Default != nil {
				mutate = admission.HandlerFunc(h.mutate)
			}
			return mutate, admission.HandlerFunc(h.validate), nil
		},
	}
}

// paths are where a kind's webhooks are served, named as controller-runtime names them.
func paths(gvk schema.GroupVersionKind) (mutate, validate string) {
	s := strings.ReplaceAll(gvk.Group, ".", "-") + "-" + gvk.Version + "-" + strings.ToLower(gvk.Kind)
	return "/mutate-" + s, "/validate-" + s
}

type kindHandler[T client.Object] struct {
	kind    Kind[T]
	gk      schema.GroupKind
	decoder admission.Decoder
	cluster Cluster
}

func (h *kindHandler[T]) newObject() T {
	var zero T
	return reflect.New(reflect.TypeOf(zero).Elem()).Interface().(T)
}

// mutate defaults a new object and returns the change as a JSON patch.
func (h *kindHandler[T]) mutate(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	obj := h.newObject()
	if err := h.decoder.DecodeRaw(req.Object, obj); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	warnings, err := h.kind.Default(ctx, h.cluster, obj)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "defaulting", "kind", h.gk.Kind, "namespace", req.Namespace, "name", req.Name)
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("defaulting %s: %w", h.gk.Kind, err))
	}
	defaulted, err := json.Marshal(obj)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, defaulted).WithWarnings(warnings...)
}

// validate refuses an invalid object with every field error at once, and passes on warnings.
func (h *kindHandler[T]) validate(ctx context.Context, req admission.Request) admission.Response {
	obj := h.newObject()
	var (
		errs     field.ErrorList
		warnings admission.Warnings
	)
	switch req.Operation {
	case admissionv1.Create:
		if err := h.decoder.DecodeRaw(req.Object, obj); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		errs = h.kind.Validate(obj)
		if h.kind.Policy != nil {
			errs = append(errs, h.kind.Policy(h.cluster.Policy, obj)...)
		}
		if h.kind.Admit != nil && len(errs) == 0 {
			var err error
			errs, warnings, err = h.kind.Admit(ctx, h.cluster, obj)
			if err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "reading the cluster", "kind", h.gk.Kind, "namespace", req.Namespace, "name", req.Name)
				return admission.Errored(http.StatusInternalServerError,
					fmt.Errorf("Kiln could not check this %s against the cluster, try again: %w", h.gk.Kind, err))
			}
		}
	case admissionv1.Update:
		old := h.newObject()
		if err := h.decoder.DecodeRaw(req.Object, obj); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if err := h.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		// The API server bumps the generation before validating admission only
		// when the spec changed. A metadata-only write (a finalizer, a label) is
		// let through, so an object stored under older rules can still be deleted.
		if obj.GetGeneration() == old.GetGeneration() {
			return admission.Allowed("")
		}
		if h.kind.ValidateUpdate != nil {
			errs = h.kind.ValidateUpdate(obj, old)
		} else {
			errs = h.kind.Validate(obj)
		}
		if h.kind.Policy != nil {
			errs = append(errs, h.kind.Policy(h.cluster.Policy, obj)...)
		}
	default:
		return admission.Allowed("")
	}
	if len(errs) > 0 {
		return refuse(h.gk, obj.GetName(), errs).WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

// refuse turns field errors into the API's Invalid status, so clients print each
// field path with its reason, as for the API server's own validation.
func refuse(gk schema.GroupKind, name string, errs field.ErrorList) admission.Response {
	status := apierrors.NewInvalid(gk, name, errs).ErrStatus
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
}
