package validation

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/api/v1alpha1"
)

func validSweep() *v1alpha1.Sweep {
	return &v1alpha1.Sweep{
		ObjectMeta: metav1.ObjectMeta{Name: "tune", Namespace: "research"},
		Spec: v1alpha1.SweepSpec{
			Parameters: []v1alpha1.SweepParameter{
				{Name: "lr", Type: v1alpha1.ParameterFloat, Min: "1e-5", Max: "0.1", Scale: v1alpha1.ScaleLog},
				{Name: "layers", Type: v1alpha1.ParameterInt, Min: "1", Max: "8"},
				{Name: "optimizer", Type: v1alpha1.ParameterCategorical, Values: []string{"adam", "sgd"}},
			},
			Objective:   v1alpha1.SweepObjective{Metric: "val_loss", Direction: v1alpha1.Minimize, Goal: "0.1"},
			Algorithm:   v1alpha1.AlgorithmTPE,
			MaxTrials:   12,
			Parallelism: 4,
			TrialTemplate: v1alpha1.TrainingJobSpec{
				Image:   "registry.example/train:1",
				Command: []string{"python", "train.py"},
				Args:    []string{"--lr=${params.lr}", "--layers", "${params.layers}"},
				Env:     []corev1.EnvVar{{Name: "OPTIMIZER", Value: "${params.optimizer}"}},
			},
		},
	}
}

func TestSweep(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*v1alpha1.Sweep)
		want   []string // "type field" of each error
	}{
		{"valid", func(*v1alpha1.Sweep) {}, nil},
		{"empty search space", func(s *v1alpha1.Sweep) { s.Spec.Parameters = nil }, []string{"FieldValueRequired spec.parameters"}},
		{"min above max", func(s *v1alpha1.Sweep) { s.Spec.Parameters[1].Min = "9" }, []string{"FieldValueInvalid spec.parameters[1].min"}},
		{"log with min 0", func(s *v1alpha1.Sweep) { s.Spec.Parameters[0].Min = "0" }, []string{"FieldValueInvalid spec.parameters[0].min"}},
		{"fractional int", func(s *v1alpha1.Sweep) { s.Spec.Parameters[1].Max = "8.5" }, []string{"FieldValueInvalid spec.parameters[1].max"}},
		{"not a number", func(s *v1alpha1.Sweep) { s.Spec.Parameters[0].Max = "ten" }, []string{"FieldValueInvalid spec.parameters[0].max"}},
		{"duplicate categorical value", func(s *v1alpha1.Sweep) { s.Spec.Parameters[2].Values = []string{"adam", "adam"} }, []string{"FieldValueDuplicate spec.parameters[2].values[1]"}},
		{"no categorical values", func(s *v1alpha1.Sweep) { s.Spec.Parameters[2].Values = nil }, []string{"FieldValueRequired spec.parameters[2].values"}},
		{"names equal but for case", func(s *v1alpha1.Sweep) { s.Spec.Parameters[1].Name = "LR" }, []string{
			"FieldValueDuplicate spec.parameters[1].name", "FieldValueInvalid spec.trialTemplate.args[2]"}},
		{"parallelism above maxTrials", func(s *v1alpha1.Sweep) { s.Spec.Parallelism = 13 }, []string{"FieldValueInvalid spec.parallelism"}},
		{"unknown parameter in args", func(s *v1alpha1.Sweep) { s.Spec.TrialTemplate.Args[0] = "--lr=${params.learning_rate}" }, []string{"FieldValueInvalid spec.trialTemplate.args[0]"}},
		{"unknown parameter in command", func(s *v1alpha1.Sweep) { s.Spec.TrialTemplate.Command[1] = "${params.script}" }, []string{"FieldValueInvalid spec.trialTemplate.command[1]"}},
		{"unknown parameter in env", func(s *v1alpha1.Sweep) { s.Spec.TrialTemplate.Env[0].Value = "${params.opt}" }, []string{"FieldValueInvalid spec.trialTemplate.env[0].value"}},
		{"KILN_ env in the template", func(s *v1alpha1.Sweep) { s.Spec.TrialTemplate.Env[0].Name = "KILN_PARAM_LR" }, []string{"FieldValueForbidden spec.trialTemplate.env[0].name"}},
		{"bad goal", func(s *v1alpha1.Sweep) { s.Spec.Objective.Goal = "low" }, []string{"FieldValueInvalid spec.objective.goal"}},
		{"no direction", func(s *v1alpha1.Sweep) { s.Spec.Objective.Direction = "" }, []string{"FieldValueNotSupported spec.objective.direction"}},
		{"template without image", func(s *v1alpha1.Sweep) { s.Spec.TrialTemplate.Image = "" }, []string{"FieldValueRequired spec.trialTemplate.image"}},
		{"median with hyperband", func(s *v1alpha1.Sweep) {
			s.Spec.Algorithm = v1alpha1.AlgorithmHyperband
			s.Spec.EarlyStopping = &v1alpha1.EarlyStopping{Rule: v1alpha1.EarlyStoppingMedian}
		}, []string{"FieldValueInvalid spec.earlyStopping.rule", "FieldValueRequired spec.earlyStopping.maxSteps"}},
		{"asha without maxSteps", func(s *v1alpha1.Sweep) {
			s.Spec.EarlyStopping = &v1alpha1.EarlyStopping{Rule: v1alpha1.EarlyStoppingASHA, MinSteps: 1}
		}, []string{"FieldValueRequired spec.earlyStopping.maxSteps"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw := validSweep()
			tc.modify(sw)
			var got []string
			for _, e := range Sweep(sw) {
				got = append(got, string(e.Type)+" "+e.Field)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("errors differ (-want +got):\n%s\n%v", d, Sweep(sw))
			}
		})
	}
}
