package render

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/sweep"
)

// TrialName is the name of a Sweep's trial: the index makes it deterministic, so a
// restarted controller finds the trials it created rather than creating them again.
func TrialName(sweep string, index int) string {
	return name(sweep, "-"+strconv.Itoa(index), maxNameLength)
}

// MetricsSecretName is the name of the Secret that holds a trial's metrics token.
func MetricsSecretName(trial string) string {
	return name(trial, "-metrics", maxNameLength)
}

// MetricsPath is where a trial POSTs its metrics, below the push server's base URL.
func MetricsPath(namespace, trial string) string {
	return fmt.Sprintf("/v1alpha1/namespaces/%s/trials/%s/metrics", namespace, trial)
}

// paramRef matches ${params.NAME}; anything up to the closing brace is the name, so
// a misspelt one is reported rather than left in the command.
var paramRef = regexp.MustCompile(`\$\{params\.([^}]*)\}`)

// ParamReferences lists the parameter names s refers to with ${params.NAME}.
func ParamReferences(s string) []string {
	var out []string
	for _, m := range paramRef.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func substitute(s string, values map[string]string) string {
	return paramRef.ReplaceAllStringFunc(s, func(ref string) string {
		if v, ok := values[paramRef.FindStringSubmatch(ref)[1]]; ok {
			return v
		}
		return ref
	})
}

// TrialOptions are what a trial needs beyond its Sweep and assignment.
type TrialOptions struct {
	// MetricsURL is the push server's base URL; empty leaves the trial with the
	// stdout protocol only.
	MetricsURL string
}

// Trial renders trial index of the Sweep with the given parameter values
// (formatted, by name): the template with ${params.NAME} replaced in command, args
// and env values, KILN_PARAM_<NAME> for each parameter and the metrics endpoint.
// The trial is owned by the Sweep and records its index and values, so the
// cluster holds all a restarted controller needs.
func Trial(sw *v1alpha1.Sweep, index int, values map[string]string, o TrialOptions) (*v1alpha1.TrainingJob, error) {
	params, err := json.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("encoding the parameters: %w", err)
	}
	trial := TrialName(sw.Name, index)
	spec := *sw.Spec.TrialTemplate.DeepCopy()
	for i := range spec.Command {
		spec.Command[i] = substitute(spec.Command[i], values)
	}
	for i := range spec.Args {
		spec.Args[i] = substitute(spec.Args[i], values)
	}
	for i := range spec.Env {
		spec.Env[i].Value = substitute(spec.Env[i].Value, values)
	}
	for _, p := range sw.Spec.Parameters {
		spec.Env = append(spec.Env, corev1.EnvVar{Name: sweep.EnvName(p.Name), Value: values[p.Name]})
	}
	if o.MetricsURL != "" {
		spec.Env = append(spec.Env,
			corev1.EnvVar{Name: v1alpha1.EnvMetricsURL, Value: strings.TrimRight(o.MetricsURL, "/") + MetricsPath(sw.Namespace, trial)},
			corev1.EnvVar{Name: v1alpha1.EnvMetricsToken, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: MetricsSecretName(trial)},
				Key:                  v1alpha1.MetricsTokenKey,
			}}})
	}
	return &v1alpha1.TrainingJob{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "TrainingJob"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            trial,
			Namespace:       sw.Namespace,
			Labels:          trialLabels(sw, index),
			Annotations:     map[string]string{v1alpha1.AnnotationTrialParameters: string(params)},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(sw, v1alpha1.GroupVersion.WithKind("Sweep"))},
		},
		Spec: spec,
	}, nil
}

// MetricsSecret renders the Secret holding a trial's metrics token. It is owned by
// the Sweep and immutable: a token never changes under a running trial.
func MetricsSecret(sw *v1alpha1.Sweep, index int, token string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            MetricsSecretName(TrialName(sw.Name, index)),
			Namespace:       sw.Namespace,
			Labels:          trialLabels(sw, index),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(sw, v1alpha1.GroupVersion.WithKind("Sweep"))},
		},
		Immutable: ptr.To(true),
		Data:      map[string][]byte{v1alpha1.MetricsTokenKey: []byte(token)},
	}
}

func trialLabels(sw *v1alpha1.Sweep, index int) map[string]string {
	return map[string]string{
		LabelManagedBy:           ManagedBy,
		v1alpha1.LabelSweep:      sw.Name,
		v1alpha1.LabelTrialIndex: strconv.Itoa(index),
	}
}
