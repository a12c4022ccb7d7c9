package sweep

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	"kiln.dev/kiln/api/v1alpha1"
	search "kiln.dev/kiln/internal/sweep"
)

// config maps a Sweep's spec onto the search's Config.
func config(sw *v1alpha1.Sweep) (search.Config, error) {
	spec := &sw.Spec
	cfg := search.Config{
		Algorithm: search.Algorithm(spec.Algorithm),
		Seed:      spec.Seed,
		Direction: search.Direction(spec.Objective.Direction),
		MaxTrials: int(spec.MaxTrials),
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = search.Random
	}
	for i, p := range spec.Parameters {
		prm := search.Param{Name: p.Name, Type: search.Type(p.Type), Log: p.Scale == v1alpha1.ScaleLog, Values: p.Values, Points: int(p.Points)}
		if p.Type != v1alpha1.ParameterCategorical {
			var err error
			if prm.Min, err = strconv.ParseFloat(p.Min, 64); err != nil {
				return cfg, fmt.Errorf("spec.parameters[%d].min: %w", i, err)
			}
			if prm.Max, err = strconv.ParseFloat(p.Max, 64); err != nil {
				return cfg, fmt.Errorf("spec.parameters[%d].max: %w", i, err)
			}
		}
		cfg.Space = append(cfg.Space, prm)
	}
	if es := spec.EarlyStopping; es != nil {
		cfg.EarlyStopping = search.EarlyStopping{
			Rule:            search.Rule(es.Rule),
			MinSteps:        int(es.MinSteps),
			MaxSteps:        int(es.MaxSteps),
			ReductionFactor: int(es.ReductionFactor),
		}
	}
	if cfg.Algorithm == search.Hyperband && cfg.EarlyStopping.Rule == "" {
		cfg.EarlyStopping.Rule = search.ASHA
	}
	return cfg, nil
}

// trial is what the controller knows of one trial TrainingJob.
type trial struct {
	tj     *v1alpha1.TrainingJob
	index  int
	values map[string]string
	search search.Trial
}

// readTrial reads a trial back from what its TrainingJob records.
func readTrial(tj *v1alpha1.TrainingJob, space search.Space) (trial, error) {
	index, err := strconv.Atoi(tj.Labels[v1alpha1.LabelTrialIndex])
	if err != nil || index < 0 {
		return trial{}, fmt.Errorf("trial %s: label %s is %q, not an index", tj.Name, v1alpha1.LabelTrialIndex, tj.Labels[v1alpha1.LabelTrialIndex])
	}
	var values map[string]string
	if err := json.Unmarshal([]byte(tj.Annotations[v1alpha1.AnnotationTrialParameters]), &values); err != nil {
		return trial{}, fmt.Errorf("trial %s: annotation %s: %w", tj.Name, v1alpha1.AnnotationTrialParameters, err)
	}
	params, err := space.Parse(values)
	if err != nil {
		return trial{}, fmt.Errorf("trial %s: %w", tj.Name, err)
	}
	curve, err := ParseCurve(tj.Annotations[v1alpha1.AnnotationTrialCurve])
	if err != nil {
		return trial{}, fmt.Errorf("trial %s: annotation %s: %w", tj.Name, v1alpha1.AnnotationTrialCurve, err)
	}
	t := trial{tj: tj, index: index, values: values, search: search.Trial{Params: params, State: stateOf(tj), Curve: curve}}
	if len(curve) > 0 {
		t.search.Value, t.search.HasValue = curve[len(curve)-1].Value, true
	}
	return t, nil
}

// stateOf is a trial's state for the search. A trial waiting for nodes counts as
// running: it holds a place among the parallel ones.
func stateOf(tj *v1alpha1.TrainingJob) search.State {
	switch {
	case tj.Annotations[v1alpha1.AnnotationTrialStopped] != "":
		return search.Stopped
	case apimeta.IsStatusConditionTrue(tj.Status.Conditions, v1alpha1.TrainingJobSucceeded):
		return search.Succeeded
	case apimeta.IsStatusConditionTrue(tj.Status.Conditions, v1alpha1.TrainingJobFailed):
		return search.Failed
	}
	return search.Running
}

// maxCurvePoints bounds a trial's recorded curve (annotations are limited in size).
// Past it the last point is replaced, so early rungs and the final value survive.
const maxCurvePoints = 1000

// FormatCurve writes a curve as "step=value,…".
func FormatCurve(c []search.Point) string {
	parts := make([]string, len(c))
	for i, p := range c {
		parts[i] = strconv.Itoa(p.Step) + "=" + strconv.FormatFloat(p.Value, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

// ParseCurve reads what FormatCurve wrote.
func ParseCurve(s string) ([]search.Point, error) {
	if s == "" {
		return nil, nil
	}
	var out []search.Point
	for _, part := range strings.Split(s, ",") {
		step, value, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not step=value", part)
		}
		n, err := strconv.Atoi(step)
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", step, err)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("value %q: %w", value, err)
		}
		out = append(out, search.Point{Step: n, Value: v})
	}
	return out, nil
}

// mergePoint puts p into the curve, replacing a point at the same step.
func mergePoint(c []search.Point, p search.Point) []search.Point {
	i, found := slices.BinarySearchFunc(c, p.Step, func(q search.Point, step int) int { return q.Step - step })
	if found {
		c[i] = p
		return c
	}
	if len(c) >= maxCurvePoints {
		if i < len(c) {
			return c // older than the kept points' end, and there is no room
		}
		c[len(c)-1] = p
		return c
	}
	return slices.Insert(c, i, p)
}

// better reports whether a is a better objective value than b.
func better(dir v1alpha1.ObjectiveDirection, a, b float64) bool {
	if dir == v1alpha1.Maximize {
		return a > b
	}
	return a < b
}

func formatValue(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
