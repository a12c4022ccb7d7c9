package sweep

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	search "kiln.dev/kiln/internal/sweep"
)

// Report is one kiln-metric line or push: metric values at a training step.
type Report struct {
	// Step is the training step (or epoch); 0 means the one after the last.
	Step   int
	Values map[string]float64
}

// MetricLinePrefix starts a metrics line on a trial's stdout.
const MetricLinePrefix = "kiln-metric"

// maxMetrics bounds the metrics of one report, as status.metrics is bounded.
const maxMetrics = 32

var metricKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-]*$`)

// ParseLine reads "kiln-metric step=3 val_loss=0.42 acc=0.9". The word may follow
// a prefix (a logger's, torchrun's "[rank0]:"), so it is looked for anywhere; a line
// without it is not a metrics line (ok false).
func ParseLine(line string) (r Report, ok bool, err error) {
	i := strings.Index(line, MetricLinePrefix+" ")
	if i < 0 {
		return Report{}, false, nil
	}
	r.Values = map[string]float64{}
	for _, field := range strings.Fields(line[i+len(MetricLinePrefix):]) {
		k, v, found := strings.Cut(field, "=")
		if !found {
			return Report{}, true, fmt.Errorf("%q is not name=value", field)
		}
		if err := r.set(k, v); err != nil {
			return Report{}, true, err
		}
	}
	return r, true, r.check()
}

func (r *Report) set(k, v string) error {
	if k == "step" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("step %q is not a whole number from 1", v)
		}
		r.Step = n
		return nil
	}
	if !metricKey.MatchString(k) {
		return fmt.Errorf("metric name %q: use letters, digits, '_', '.' and '-'", k)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("metric %s: %q is not a finite number", k, v)
	}
	r.Values[k] = f
	return nil
}

func (r *Report) check() error {
	switch {
	case len(r.Values) == 0:
		return errors.New("no metric in the report")
	case len(r.Values) > maxMetrics:
		return fmt.Errorf("%d metrics in one report; at most %d", len(r.Values), maxMetrics)
	}
	return nil
}

// ParseBody reads a push: a JSON object of numbers ({"step": 3, "val_loss": 0.42}), or
// one or more kiln-metric lines.
func ParseBody(body []byte) ([]Report, error) {
	trimmed := bytes.TrimSpace(body)
	if bytes.HasPrefix(trimmed, []byte("{")) {
		var raw map[string]json.Number
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("the body is not a JSON object of numbers: %w", err)
		}
		r := Report{Values: map[string]float64{}}
		for k, v := range raw {
			if err := r.set(k, v.String()); err != nil {
				return nil, err
			}
		}
		return []Report{r}, r.check()
	}
	var out []Report
	sc := bufio.NewScanner(bytes.NewReader(trimmed))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		r, ok, err := ParseLine(sc.Text())
		if !ok {
			return nil, fmt.Errorf("%q is neither JSON nor a %s line", sc.Text(), MetricLinePrefix)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("empty body")
	}
	return out, sc.Err()
}

// ParseLog reads every metrics line of a log. Lines without a step are numbered
// on from the line before, so reading the same log again gives the same reports.
func ParseLog(r io.Reader) []Report {
	var out []Report
	last := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		rep, ok, err := ParseLine(sc.Text())
		if !ok || err != nil {
			// A malformed line is the training code's bug; the rest still count.
			continue
		}
		if rep.Step == 0 {
			rep.Step = last + 1
		}
		last = rep.Step
		out = append(out, rep)
	}
	return out
}

// ErrTrialStopped refuses reports for a trial early stopping ended: what it says
// after the decision must not change the history the decision was made on.
var ErrTrialStopped = errors.New("the trial was stopped")

// Recorder stores trials' reports: the objective's curve in an annotation of the
// trial TrainingJob (what the search reads), the latest value of every metric and
// the best of the objective in its status.metrics (what people read).
type Recorder struct {
	Client client.Client
	// APIReader reads the trial again after a conflict, when the cache is behind.
	APIReader client.Reader
}

// The cache may not have a trial yet that was created a moment ago, and a
// conflict means it is behind: the trial is then read from the API server.
// +kubebuilder:rbac:groups=kiln.dev,resources=trainingjobs,verbs=get

// Record adds reports to the trial.
func (m *Recorder) Record(ctx context.Context, key client.ObjectKey, reports []Report) error {
	tj := &v1alpha1.TrainingJob{}
	err := m.Client.Get(ctx, key, tj)
	if apierrors.IsNotFound(err) {
		err = m.APIReader.Get(ctx, key, tj)
	}
	if err != nil {
		return err
	}
	sw := &v1alpha1.Sweep{}
	if err := m.Client.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: tj.Labels[v1alpha1.LabelSweep]}, sw); err != nil {
		return fmt.Errorf("the trial's Sweep: %w", err)
	}
	objective, dir := sw.Spec.Objective.Metric, sw.Spec.Objective.Direction
	first := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if err := m.APIReader.Get(ctx, key, tj); err != nil {
				return err
			}
		}
		first = false
		if tj.Annotations[v1alpha1.AnnotationTrialStopped] != "" {
			return ErrTrialStopped
		}
		curve, err := ParseCurve(tj.Annotations[v1alpha1.AnnotationTrialCurve])
		if err != nil {
			curve = nil // a hand-edited annotation: start again rather than never record
		}
		metrics := maps.Clone(tj.Status.Metrics)
		if metrics == nil {
			metrics = map[string]string{}
		}
		for _, r := range reports {
			step := r.Step
			if step == 0 {
				last, _ := strconv.Atoi(metrics["step"])
				if n := len(curve); n > 0 {
					last = max(last, curve[n-1].Step)
				}
				step = last + 1
			}
			if last, _ := strconv.Atoi(metrics["step"]); step >= last {
				for k, v := range r.Values {
					if len(metrics) < maxMetrics*2 || metrics[k] != "" {
						metrics[k] = formatValue(v)
					}
				}
				metrics["step"] = strconv.Itoa(step)
			}
			if v, ok := r.Values[objective]; ok {
				curve = mergePoint(curve, search.Point{Step: step, Value: v})
			}
		}
		if len(curve) > 0 {
			best := curve[0].Value
			for _, p := range curve[1:] {
				if better(dir, p.Value, best) {
					best = p.Value
				}
			}
			metrics[objective+".best"] = formatValue(best)
		}
		return m.write(ctx, tj, FormatCurve(curve), metrics)
	})
}

// write stores the curve, then the status metrics; each only when it changed, each
// against the resourceVersion read, so a concurrent report is never overwritten.
func (m *Recorder) write(ctx context.Context, tj *v1alpha1.TrainingJob, curve string, metrics map[string]string) error {
	if tj.Annotations[v1alpha1.AnnotationTrialCurve] != curve {
		before := tj.DeepCopy()
		if tj.Annotations == nil {
			tj.Annotations = map[string]string{}
		}
		tj.Annotations[v1alpha1.AnnotationTrialCurve] = curve
		if err := m.Client.Patch(ctx, tj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return err
		}
	}
	if equality.Semantic.DeepEqual(tj.Status.Metrics, metrics) {
		return nil
	}
	before := tj.DeepCopy()
	tj.Status.Metrics = metrics
	return m.Client.Status().Patch(ctx, tj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}
