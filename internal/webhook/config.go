package webhook

import (
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Timeouts and failure policies, chosen per webhook (docs/admission.md says why).
const (
	// Kiln kinds: refused while the webhook is down, as an unchecked object
	// would only fail later, less clearly. Their handlers read informer caches,
	// and at most two live GETs (referenced Secret, claim).
	kindTimeoutSeconds = 5
	// Pods: the handler reads one cached namespace; a slow answer must not hold
	// the Job controller or a user's kubectl for long.
	podTimeoutSeconds = 3
)

// Configurations are the webhook configurations config/webhook installs; a test
// keeps config/webhook/manifests.yaml equal to them. They reach the webhooks
// through the Service in namespace, and carry no caBundle: Kiln (or cert-manager)
// injects it in the cluster, so the manifests stay static.
func Configurations(scheme *runtime.Scheme, namespace string) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	mut := &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: MutatingConfigName},
	}
	val := &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: ValidatingConfigName},
	}
	clientConfig := func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: namespace, Name: ServiceName, Path: ptr.To(path), Port: ptr.To[int32](443),
		}}
	}
	for _, k := range kinds() {
		gvk, err := apiutil.GVKForObject(k.object, scheme)
		if err != nil {
			return nil, nil, err
		}
		mp, vp := paths(gvk)
		rule := func(ops ...admissionregistrationv1.OperationType) []admissionregistrationv1.RuleWithOperations {
			return []admissionregistrationv1.RuleWithOperations{{Operations: ops, Rule: admissionregistrationv1.Rule{
				APIGroups: []string{gvk.Group}, APIVersions: []string{gvk.Version}, Resources: []string{k.resource},
				Scope: ptr.To(admissionregistrationv1.NamespacedScope),
			}}}
		}
		if k.mutating {
			mut.Webhooks = append(mut.Webhooks, admissionregistrationv1.MutatingWebhook{
				Name:                    "m" + k.resource + "." + gvk.Group,
				ClientConfig:            clientConfig(mp),
				Rules:                   rule(admissionregistrationv1.Create),
				FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
				MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				TimeoutSeconds:          ptr.To[int32](kindTimeoutSeconds),
				AdmissionReviewVersions: []string{"v1"},
				ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
				MatchConditions:         k.defaultWhen,
			})
		}
		val.Webhooks = append(val.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name:                    "v" + k.resource + "." + gvk.Group,
			ClientConfig:            clientConfig(vp),
			Rules:                   rule(admissionregistrationv1.Create, admissionregistrationv1.Update),
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](kindTimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
			// A write that leaves the spec alone (labels, finalizers) has nothing to check;
			// the handler would let it through, so the API server need not ask.
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "spec-changed",
				Expression: "request.operation != 'UPDATE' || object.metadata.generation != oldObject.metadata.generation",
			}},
		})
	}

	notExcluded := metav1.LabelSelectorRequirement{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: ExcludedNamespaces(namespace),
	}
	notOptedOut := metav1.LabelSelectorRequirement{Key: LabelInject, Operator: metav1.LabelSelectorOpNotIn, Values: []string{InjectDisabled}}
	pods := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
			Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
	}}
	podHook := func(name string, failure admissionregistrationv1.FailurePolicyType, ns, obj []metav1.LabelSelectorRequirement) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name:                    name,
			ClientConfig:            clientConfig(PodPath),
			Rules:                   pods,
			FailurePolicy:           ptr.To(failure),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](podTimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
			NamespaceSelector:       &metav1.LabelSelector{MatchExpressions: ns},
			ObjectSelector:          &metav1.LabelSelector{MatchExpressions: obj},
			// Evaluated in the API server: a pod injected when its workload was
			// rendered costs no round trip to the webhook.
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "not-injected-yet",
				Expression: fmt.Sprintf("!has(object.metadata.annotations) || !(%q in object.metadata.annotations)", AnnotationInjected),
			}},
		}
	}
	mut.Webhooks = append(mut.Webhooks,
		// Pods of Kiln's own workloads, in any namespace but the excluded ones. Fail:
		// the Job controller retries a refused pod, so a pod waits for the webhook
		// rather than running without its sidecars.
		podHook("workload-pods.kiln.dev", admissionregistrationv1.Fail,
			[]metav1.LabelSelectorRequirement{notExcluded},
			[]metav1.LabelSelectorRequirement{
				{Key: LabelManagedBy, Operator: metav1.LabelSelectorOpIn, Values: []string{managedByKiln}}, notOptedOut,
			}),
		// Every other pod of an opted-in namespace. Ignore: Kiln being down must
		// never stop a namespace's pods; they then start without injection.
		podHook("opted-in-pods.kiln.dev", admissionregistrationv1.Ignore,
			[]metav1.LabelSelectorRequirement{
				{Key: LabelInject, Operator: metav1.LabelSelectorOpIn, Values: []string{InjectEnabled}}, notExcluded,
			},
			[]metav1.LabelSelectorRequirement{
				{Key: LabelManagedBy, Operator: metav1.LabelSelectorOpNotIn, Values: []string{managedByKiln}}, notOptedOut,
			}),
	)
	return mut, val, nil
}
