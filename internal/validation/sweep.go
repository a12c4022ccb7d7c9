package validation

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
)

var (
	paramName  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	metricName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-]*$`)
)

// Sweep checks a Sweep as a whole: what the CRD's CEL rules check, again for
// offline use, and what CEL cannot (parameters the trial template refers to but
// the sweep does not define).
func Sweep(sw *v1alpha1.Sweep) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range utilvalidation.IsDNS1035Label(sw.Name) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), sw.Name, msg))
	}
	spec, p := &sw.Spec, field.NewPath("spec")
	errs = append(errs, validateParameters(spec.Parameters, p.Child("parameters"))...)
	errs = append(errs, validateObjective(&spec.Objective, p.Child("objective"))...)

	if spec.MaxTrials < 1 {
		errs = append(errs, field.Invalid(p.Child("maxTrials"), spec.MaxTrials, "must be at least 1"))
	}
	if spec.Parallelism < 0 {
		errs = append(errs, field.Invalid(p.Child("parallelism"), spec.Parallelism, "must be at least 1"))
	} else if spec.Parallelism > spec.MaxTrials {
		errs = append(errs, field.Invalid(p.Child("parallelism"), spec.Parallelism,
			fmt.Sprintf("must not exceed maxTrials (%d)", spec.MaxTrials)))
	}
	if m := spec.MaxFailedTrials; m != nil && *m < 0 {
		errs = append(errs, field.Invalid(p.Child("maxFailedTrials"), *m, "must not be negative"))
	}
	if es := spec.EarlyStopping; es != nil {
		ep := p.Child("earlyStopping")
		switch es.Rule {
		case "", v1alpha1.EarlyStoppingNone, v1alpha1.EarlyStoppingMedian, v1alpha1.EarlyStoppingASHA:
		default:
			errs = append(errs, field.NotSupported(ep.Child("rule"), es.Rule, []string{"none", "median", "asha"}))
		}
		if es.Rule == v1alpha1.EarlyStoppingMedian && spec.Algorithm == v1alpha1.AlgorithmHyperband {
			errs = append(errs, field.Invalid(ep.Child("rule"), es.Rule, "algorithm hyperband stops trials by ASHA; leave rule unset or asha"))
		}
		if (es.Rule == v1alpha1.EarlyStoppingASHA || spec.Algorithm == v1alpha1.AlgorithmHyperband) && es.MaxSteps == 0 {
			errs = append(errs, field.Required(ep.Child("maxSteps"), "successive halving needs the most steps a trial reports"))
		}
		if es.MaxSteps > 0 && es.MinSteps >= es.MaxSteps {
			errs = append(errs, field.Invalid(ep.Child("minSteps"), es.MinSteps, "must be less than maxSteps"))
		}
	}
	if spec.Algorithm == v1alpha1.AlgorithmHyperband && spec.EarlyStopping == nil {
		errs = append(errs, field.Required(p.Child("earlyStopping", "maxSteps"), "successive halving needs the most steps a trial reports"))
	}
	switch spec.Algorithm {
	case "", v1alpha1.AlgorithmGrid, v1alpha1.AlgorithmRandom, v1alpha1.AlgorithmTPE, v1alpha1.AlgorithmHyperband:
	default:
		errs = append(errs, field.NotSupported(p.Child("algorithm"), spec.Algorithm, []string{"grid", "random", "tpe", "hyperband"}))
	}

	tp := p.Child("trialTemplate")
	errs = append(errs, validateSpec(&spec.TrialTemplate, tp)...)
	if len(spec.Parameters) > 0 {
		// Without parameters every reference would be reported, burying the one error.
		errs = append(errs, validateParamReferences(spec, tp)...)
	}
	for i, e := range spec.TrialTemplate.Env {
		if strings.HasPrefix(e.Name, v1alpha1.EnvReservedPrefix) {
			errs = append(errs, field.Forbidden(tp.Child("env").Index(i).Child("name"),
				fmt.Sprintf("%s: names starting with %s are set by Kiln on each trial", e.Name, v1alpha1.EnvReservedPrefix)))
		}
	}
	return errs
}

func validateParameters(params []v1alpha1.SweepParameter, p *field.Path) field.ErrorList {
	if len(params) == 0 {
		return field.ErrorList{field.Required(p, "the search space needs at least one parameter")}
	}
	var errs field.ErrorList
	// Names differing only in case would set the same KILN_PARAM_<NAME>.
	seen := map[string]bool{}
	for i, prm := range params {
		pp := p.Index(i)
		if !paramName.MatchString(prm.Name) {
			errs = append(errs, field.Invalid(pp.Child("name"), prm.Name, "must start with a letter and contain only letters, digits and '_'"))
		}
		if key := strings.ToUpper(prm.Name); seen[key] {
			errs = append(errs, field.Duplicate(pp.Child("name"), prm.Name))
		} else {
			seen[key] = true
		}
		switch prm.Type {
		case v1alpha1.ParameterCategorical:
			errs = append(errs, validateCategorical(prm, pp)...)
		case v1alpha1.ParameterInt, v1alpha1.ParameterFloat:
			errs = append(errs, validateRange(prm, pp)...)
		default:
			errs = append(errs, field.NotSupported(pp.Child("type"), prm.Type, []string{"int", "float", "categorical"}))
		}
	}
	return errs
}

func validateCategorical(prm v1alpha1.SweepParameter, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(prm.Values) == 0 {
		errs = append(errs, field.Required(p.Child("values"), "a categorical parameter needs at least one value"))
	}
	for i, v := range prm.Values {
		if v == "" {
			errs = append(errs, field.Invalid(p.Child("values").Index(i), v, "must not be empty"))
		}
		if slices.Index(prm.Values, v) < i {
			errs = append(errs, field.Duplicate(p.Child("values").Index(i), v))
		}
	}
	for _, f := range []struct{ name, value string }{{"min", prm.Min}, {"max", prm.Max}, {"scale", string(prm.Scale)}} {
		if f.value != "" {
			errs = append(errs, field.Forbidden(p.Child(f.name), "a categorical parameter takes values only"))
		}
	}
	return errs
}

func validateRange(prm v1alpha1.SweepParameter, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(prm.Values) > 0 {
		errs = append(errs, field.Forbidden(p.Child("values"), "int and float parameters take min and max"))
	}
	lo, loErrs := number(prm.Min, prm.Type, p.Child("min"))
	hi, hiErrs := number(prm.Max, prm.Type, p.Child("max"))
	errs = append(append(errs, loErrs...), hiErrs...)
	if len(loErrs)+len(hiErrs) > 0 {
		return errs
	}
	if lo > hi {
		errs = append(errs, field.Invalid(p.Child("min"), prm.Min, fmt.Sprintf("must not be greater than max (%s)", prm.Max)))
	}
	switch prm.Scale {
	case "", v1alpha1.ScaleLinear:
	case v1alpha1.ScaleLog:
		if lo <= 0 {
			errs = append(errs, field.Invalid(p.Child("min"), prm.Min, "a log scale needs min > 0"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("scale"), prm.Scale, []string{"linear", "log"}))
	}
	return errs
}

// number parses a bound; an int parameter's must be whole.
func number(s string, t v1alpha1.ParameterType, p *field.Path) (float64, field.ErrorList) {
	if s == "" {
		return 0, field.ErrorList{field.Required(p, "int and float parameters need min and max")}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, field.ErrorList{field.Invalid(p, s, "must be a decimal number, such as 0.001 or 1e-5")}
	}
	if t == v1alpha1.ParameterInt && v != math.Trunc(v) {
		return 0, field.ErrorList{field.Invalid(p, s, "an int parameter takes whole numbers")}
	}
	return v, nil
}

func validateObjective(o *v1alpha1.SweepObjective, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if o.Metric == "" {
		errs = append(errs, field.Required(p.Child("metric"), "the metric trials report, such as val_loss"))
	} else if !metricName.MatchString(o.Metric) {
		errs = append(errs, field.Invalid(p.Child("metric"), o.Metric, "must start with a letter or '_' and contain only letters, digits, '_', '.' and '-'"))
	}
	if o.Direction != v1alpha1.Minimize && o.Direction != v1alpha1.Maximize {
		errs = append(errs, field.NotSupported(p.Child("direction"), o.Direction, []string{"minimize", "maximize"}))
	}
	if o.Goal != "" {
		if _, err := strconv.ParseFloat(o.Goal, 64); err != nil {
			errs = append(errs, field.Invalid(p.Child("goal"), o.Goal, "must be a decimal number"))
		}
	}
	return errs
}

// validateParamReferences finds ${params.NAME} in the template's command, args and
// env values that name no parameter: left alone they would reach the training
// code as literal text.
func validateParamReferences(spec *v1alpha1.SweepSpec, p *field.Path) field.ErrorList {
	known := map[string]bool{}
	var names []string
	for _, prm := range spec.Parameters {
		known[prm.Name] = true
		names = append(names, prm.Name)
	}
	var errs field.ErrorList
	check := func(s string, fp *field.Path) {
		for _, ref := range render.ParamReferences(s) {
			if !known[ref] {
				errs = append(errs, field.Invalid(fp, s, fmt.Sprintf("${params.%s} names no parameter of this sweep (they are: %s)", ref, strings.Join(names, ", "))))
			}
		}
	}
	t := &spec.TrialTemplate
	for i, s := range t.Command {
		check(s, p.Child("command").Index(i))
	}
	for i, s := range t.Args {
		check(s, p.Child("args").Index(i))
	}
	for i, e := range t.Env {
		check(e.Value, p.Child("env").Index(i).Child("value"))
	}
	return errs
}
