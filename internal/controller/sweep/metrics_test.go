package sweep

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kiln.dev/kiln/api/v1alpha1"
	search "kiln.dev/kiln/internal/sweep"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    Report
		ok      bool
		wantErr string
	}{
		{"kiln-metric step=3 val_loss=0.42", Report{Step: 3, Values: map[string]float64{"val_loss": 0.42}}, true, ""},
		{"[rank0]: kiln-metric val_loss=1e-3 acc=0.9", Report{Values: map[string]float64{"val_loss": 0.001, "acc": 0.9}}, true, ""},
		{"epoch 3 done, loss 0.4", Report{}, false, ""},
		{"kiln-metrics val_loss=1", Report{}, false, ""},
		{"kiln-metric step=3", Report{}, true, "no metric"},
		{"kiln-metric val_loss=nan", Report{}, true, "not a finite number"},
		{"kiln-metric step=0 val_loss=1", Report{}, true, "whole number from 1"},
		{"kiln-metric val_loss", Report{}, true, "not name=value"},
		{"kiln-metric bad$name=1", Report{}, true, "metric name"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			got, ok, err := ParseLine(tc.line)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); tc.ok && d != "" {
				t.Errorf("report differs (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseBody(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []Report
		wantErr    string
	}{
		{"json", `{"step": 2, "val_loss": 0.5, "acc": 1}`, []Report{{Step: 2, Values: map[string]float64{"val_loss": 0.5, "acc": 1}}}, ""},
		{"lines", "kiln-metric step=1 val_loss=0.9\n\nkiln-metric step=2 val_loss=0.7\n", []Report{
			{Step: 1, Values: map[string]float64{"val_loss": 0.9}}, {Step: 2, Values: map[string]float64{"val_loss": 0.7}}}, ""},
		{"json with a string", `{"val_loss": "low"}`, nil, "not a JSON object of numbers"},
		{"neither", "val_loss=1", nil, "neither JSON nor"},
		{"empty", "  ", nil, "empty body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBody([]byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("reports differ (-want +got):\n%s", d)
			}
		})
	}
}

// Lines without a step are numbered on from the line before, so a log read twice gives
// the same points; malformed lines are skipped.
func TestParseLog(t *testing.T) {
	log := `starting
kiln-metric val_loss=0.9
kiln-metric val_loss=0.8
kiln-metric step=10 val_loss=0.5
kiln-metric val_loss=oops
kiln-metric val_loss=0.4
done`
	want := []Report{
		{Step: 1, Values: map[string]float64{"val_loss": 0.9}},
		{Step: 2, Values: map[string]float64{"val_loss": 0.8}},
		{Step: 10, Values: map[string]float64{"val_loss": 0.5}},
		{Step: 11, Values: map[string]float64{"val_loss": 0.4}},
	}
	if d := cmp.Diff(want, ParseLog(strings.NewReader(log))); d != "" {
		t.Errorf("reports differ (-want +got):\n%s", d)
	}
}

func TestCurve(t *testing.T) {
	var c []search.Point
	for _, p := range []search.Point{{Step: 3, Value: 0.5}, {Step: 1, Value: 0.9}, {Step: 2, Value: 0.7}, {Step: 3, Value: 0.45}} {
		c = mergePoint(c, p)
	}
	want := []search.Point{{Step: 1, Value: 0.9}, {Step: 2, Value: 0.7}, {Step: 3, Value: 0.45}}
	if d := cmp.Diff(want, c); d != "" {
		t.Fatalf("curve differs (-want +got):\n%s", d)
	}
	s := FormatCurve(c)
	if s != "1=0.9,2=0.7,3=0.45" {
		t.Errorf("formatted %q", s)
	}
	back, err := ParseCurve(s)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(c, back); d != "" {
		t.Errorf("round trip differs (-want +got):\n%s", d)
	}
	// A full curve keeps its early points (the rungs) and the newest value.
	full := make([]search.Point, 0, maxCurvePoints)
	for i := range maxCurvePoints {
		full = append(full, search.Point{Step: i + 1, Value: 1})
	}
	full = mergePoint(full, search.Point{Step: 5000, Value: 0.1})
	if len(full) != maxCurvePoints || full[0].Step != 1 || full[len(full)-1] != (search.Point{Step: 5000, Value: 0.1}) {
		t.Errorf("full curve: %d points, first %v, last %v", len(full), full[0], full[len(full)-1])
	}
}

func TestConfig(t *testing.T) {
	sw := &v1alpha1.Sweep{Spec: v1alpha1.SweepSpec{
		Parameters: []v1alpha1.SweepParameter{
			{Name: "lr", Type: v1alpha1.ParameterFloat, Min: "1e-5", Max: "0.1", Scale: v1alpha1.ScaleLog},
			{Name: "layers", Type: v1alpha1.ParameterInt, Min: "1", Max: "8", Points: 4},
			{Name: "opt", Type: v1alpha1.ParameterCategorical, Values: []string{"adam", "sgd"}},
		},
		Objective:     v1alpha1.SweepObjective{Metric: "acc", Direction: v1alpha1.Maximize},
		Algorithm:     v1alpha1.AlgorithmHyperband,
		Seed:          3,
		MaxTrials:     20,
		EarlyStopping: &v1alpha1.EarlyStopping{MinSteps: 1, MaxSteps: 27, ReductionFactor: 3},
	}}
	got, err := config(sw)
	if err != nil {
		t.Fatal(err)
	}
	want := search.Config{
		Space: search.Space{
			{Name: "lr", Type: search.Float, Min: 1e-5, Max: 0.1, Log: true},
			{Name: "layers", Type: search.Int, Min: 1, Max: 8, Points: 4},
			{Name: "opt", Type: search.Categorical, Values: []string{"adam", "sgd"}},
		},
		Algorithm: search.Hyperband, Seed: 3, Direction: search.Maximize, MaxTrials: 20,
		EarlyStopping: search.EarlyStopping{Rule: search.ASHA, MinSteps: 1, MaxSteps: 27, ReductionFactor: 3},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("config differs (-want +got):\n%s", d)
	}
	if _, _, err := search.New(got); err != nil {
		t.Errorf("the search refuses the config: %v", err)
	}
}
