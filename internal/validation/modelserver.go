package validation

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
)

// MaxModelServerNameLength leaves room for the -canary suffix of the canary's
// Deployment and Service within a DNS label.
const MaxModelServerNameLength = 56

// ValidateModelServer checks a ModelServer as a whole. Whether a trainingjob://
// model has succeeded needs the cluster: see ModelTrainingJobs and
// ValidateModelTrainingJobs.
func ValidateModelServer(ms *v1alpha1.ModelServer) field.ErrorList {
	var errs field.ErrorList
	name := field.NewPath("metadata", "name")
	for _, msg := range utilvalidation.IsDNS1035Label(ms.Name) {
		errs = append(errs, field.Invalid(name, ms.Name, msg))
	}
	if len(ms.Name) > MaxModelServerNameLength {
		errs = append(errs, field.TooLong(name, ms.Name, MaxModelServerNameLength))
	}
	spec := &ms.Spec
	p := field.NewPath("spec")
	errs = append(errs, validateModel(&spec.Model, p.Child("model"))...)
	errs = append(errs, validateRuntime(&spec.Runtime, p.Child("runtime"))...)
	errs = append(errs, validateReplicas(&spec.Replicas, p.Child("replicas"))...)
	if r := spec.Resources; r.GPUs < 0 || r.GPUs > 64 {
		errs = append(errs, field.Invalid(p.Child("resources", "gpus"), r.GPUs, "must be between 0 and 64"))
	}
	seen := map[string]bool{}
	for i, e := range spec.Env {
		np := p.Child("env").Index(i).Child("name")
		for _, msg := range utilvalidation.IsEnvVarName(e.Name) {
			errs = append(errs, field.Invalid(np, e.Name, msg))
		}
		if strings.HasPrefix(e.Name, v1alpha1.EnvReservedPrefix) {
			errs = append(errs, field.Forbidden(np, fmt.Sprintf("%s: names starting with %s are set by Kiln", e.Name, v1alpha1.EnvReservedPrefix)))
		}
		if seen[e.Name] {
			errs = append(errs, field.Duplicate(np, e.Name))
		}
		seen[e.Name] = true
	}
	if c := spec.Canary; c != nil {
		cp := p.Child("canary")
		if c.Model == nil && c.Runtime == nil {
			errs = append(errs, field.Required(cp, "a canary changes the model, the runtime or both"))
		}
		if c.Model != nil {
			errs = append(errs, validateModel(c.Model, cp.Child("model"))...)
		}
		if c.Runtime != nil {
			errs = append(errs, validateRuntime(c.Runtime, cp.Child("runtime"))...)
		}
		if c.TrafficPercent < 0 || c.TrafficPercent > 100 {
			errs = append(errs, field.Invalid(cp.Child("trafficPercent"), c.TrafficPercent, "must be between 0 and 100"))
		}
	}
	return errs
}

// ValidateModelServerUpdate checks an update. Nothing is immutable: a new model,
// runtime or canary is rolled out.
func ValidateModelServerUpdate(newMS, _ *v1alpha1.ModelServer) field.ErrorList {
	return ValidateModelServer(newMS)
}

func validateModel(m *v1alpha1.ModelSource, p *field.Path) field.ErrorList {
	up := p.Child("uri")
	if rest, ok := strings.CutPrefix(m.URI, "trainingjob://"); ok {
		var errs field.ErrorList
		for _, msg := range utilvalidation.IsDNS1035Label(rest) {
			errs = append(errs, field.Invalid(up, m.URI, "trainingjob://<name> takes a TrainingJob in the same namespace: "+msg))
		}
		return errs
	}
	scheme, _, _ := strings.Cut(m.URI, "://")
	if !slices.Contains([]string{"pvc", "s3", "gs", "https"}, scheme) {
		return field.ErrorList{field.Invalid(up, m.URI, "must be pvc://<claim>[/<path>], trainingjob://<name>, s3://<bucket>/<key>, gs://<bucket>/<key> or https://<host>/<path>")}
	}
	_, errs := validateURI(m.URI, up)
	if len(errs) == 0 && !strings.HasPrefix(m.URI, "pvc://") && strings.Count(strings.TrimSuffix(m.URI, "/"), "/") < 3 {
		errs = append(errs, field.Invalid(up, m.URI, "name the model's object or prefix, not only the bucket or host"))
	}
	if len(m.Format) > 63 {
		errs = append(errs, field.TooLong(p.Child("format"), m.Format, 63))
	}
	return errs
}

func validateRuntime(rt *v1alpha1.ServingRuntime, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if rt.Preset == "" {
		if strings.TrimSpace(rt.Image) == "" {
			errs = append(errs, field.Required(p.Child("image"), "a runtime without a preset needs the server's image"))
		}
		if rt.Port == nil {
			errs = append(errs, field.Required(p.Child("port"), "a runtime without a preset needs the port the server listens on"))
		}
	} else {
		for _, msg := range utilvalidation.IsDNS1123Label(rt.Preset) {
			errs = append(errs, field.Invalid(p.Child("preset"), rt.Preset, msg))
		}
	}
	if rt.Port != nil {
		for _, msg := range utilvalidation.IsValidPortNum(int(*rt.Port)) {
			errs = append(errs, field.Invalid(p.Child("port"), *rt.Port, msg))
		}
	}
	switch rt.Protocol {
	case "", v1alpha1.ProtocolHTTP, v1alpha1.ProtocolGRPC:
	default:
		errs = append(errs, field.NotSupported(p.Child("protocol"), rt.Protocol, []string{string(v1alpha1.ProtocolHTTP), string(v1alpha1.ProtocolGRPC)}))
	}
	if rt.ReadinessPath != "" && !strings.HasPrefix(rt.ReadinessPath, "/") {
		errs = append(errs, field.Invalid(p.Child("readinessPath"), rt.ReadinessPath, "must start with /"))
	}
	return errs
}

func validateReplicas(r *v1alpha1.ReplicasSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	minR, maxR := ptr.Deref(r.Min, 1), ptr.Deref(r.Max, 1)
	if minR < 1 || minR > 1000 {
		errs = append(errs, field.Invalid(p.Child("min"), minR, "must be between 1 and 1000"))
	}
	if maxR < 1 || maxR > 1000 {
		errs = append(errs, field.Invalid(p.Child("max"), maxR, "must be between 1 and 1000"))
	}
	if minR > maxR {
		errs = append(errs, field.Invalid(p.Child("min"), minR, fmt.Sprintf("must not exceed replicas.max (%d)", maxR)))
	}
	if r.TargetCPUUtilization != nil && r.TargetConcurrency != nil {
		errs = append(errs, field.Forbidden(p.Child("targetConcurrency"), "scale on targetCPUUtilization or targetConcurrency, not both"))
	}
	return errs
}

// trainingJobURIs are the trainingjob:// models of ms by field path: stable and canary.
func trainingJobURIs(ms *v1alpha1.ModelServer) map[*field.Path]string {
	out := map[*field.Path]string{}
	p := field.NewPath("spec")
	if name, ok := strings.CutPrefix(ms.Spec.Model.URI, "trainingjob://"); ok {
		out[p.Child("model", "uri")] = name
	}
	if c := ms.Spec.Canary; c != nil && c.Model != nil {
		if name, ok := strings.CutPrefix(c.Model.URI, "trainingjob://"); ok {
			out[p.Child("canary", "model", "uri")] = name
		}
	}
	return out
}

// ModelTrainingJobs reads the TrainingJobs ms's trainingjob:// models name, from
// ms's namespace. A missing one maps to nil. The CLI calls it with the user's own rights
// (admission does not, so it answers no one whether a TrainingJob exists) and passes the
// result to ValidateModelTrainingJobs.
func ModelTrainingJobs(ctx context.Context, r client.Reader, ms *v1alpha1.ModelServer) (map[string]*v1alpha1.TrainingJob, error) {
	out := map[string]*v1alpha1.TrainingJob{}
	for _, name := range trainingJobURIs(ms) {
		tj := &v1alpha1.TrainingJob{}
		err := r.Get(ctx, client.ObjectKey{Namespace: ms.Namespace, Name: name}, tj)
		switch {
		case apierrors.IsNotFound(err):
			out[name] = nil
		case err != nil:
			return nil, fmt.Errorf("reading TrainingJob %s: %w", name, err)
		default:
			out[name] = tj
		}
	}
	return out, nil
}

// ValidateModelTrainingJobs refuses trainingjob:// models whose TrainingJob does
// not exist, failed, or keeps no output volume: none of them will ever have a model
// to serve. A TrainingJob still on its way is no error, so a job and the server of
// its model can be applied together; the warnings say the server waits for it.
// jobs is what ModelTrainingJobs read.
func ValidateModelTrainingJobs(ms *v1alpha1.ModelServer, jobs map[string]*v1alpha1.TrainingJob) (field.ErrorList, []string) {
	var (
		errs     field.ErrorList
		warnings []string
	)
	for path, name := range trainingJobURIs(ms) {
		msg := TrainingJobModelProblem(jobs[name], name, ms.Namespace)
		switch {
		case msg == "":
		case trainingJobOnItsWay(jobs[name]):
			warnings = append(warnings, fmt.Sprintf("%s: %s; the ModelServer rolls out when it does", path, msg))
		default:
			errs = append(errs, field.Invalid(path, "trainingjob://"+name, msg))
		}
	}
	return errs, warnings
}

// trainingJobOnItsWay is a TrainingJob that may yet save a model.
func trainingJobOnItsWay(tj *v1alpha1.TrainingJob) bool {
	return tj != nil && tj.Spec.Output != nil &&
		!apimeta.IsStatusConditionTrue(tj.Status.Conditions, v1alpha1.TrainingJobFailed) &&
		!apimeta.IsStatusConditionTrue(tj.Status.Conditions, v1alpha1.TrainingJobSucceeded)
}

// TrainingJobModelProblem says why a TrainingJob's output cannot be served yet,
// or returns "" when it can. tj is nil when the TrainingJob does not exist.
func TrainingJobModelProblem(tj *v1alpha1.TrainingJob, name, namespace string) string {
	switch {
	case tj == nil:
		return fmt.Sprintf("TrainingJob %s does not exist in namespace %s", name, namespace)
	case tj.Spec.Output == nil:
		return fmt.Sprintf("TrainingJob %s has no spec.output volume, so it saved no model to serve", name)
	case apimeta.IsStatusConditionTrue(tj.Status.Conditions, v1alpha1.TrainingJobFailed):
		return fmt.Sprintf("TrainingJob %s failed; serve one that succeeded", name)
	case !apimeta.IsStatusConditionTrue(tj.Status.Conditions, v1alpha1.TrainingJobSucceeded):
		state := string(tj.Status.State)
		if state == "" {
			state = string(v1alpha1.StatePending)
		}
		return fmt.Sprintf("TrainingJob %s has not succeeded yet (it is %s); its model can be served once it has", name, state)
	}
	return ""
}
