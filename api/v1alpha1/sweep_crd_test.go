package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

const sweepCRDPath = "../../config/crd/bases/kiln.dev_sweeps.yaml"

// The Sweep CRD embeds the TrainingJob spec, so its CEL cost is checked as a whole.
func TestSweepCRDIsValid(t *testing.T) {
	for _, err := range crdvalidation.ValidateCustomResourceDefinition(context.Background(), loadCRDFile(t, sweepCRDPath)) {
		t.Error(err)
	}
}

func TestSweepCELRules(t *testing.T) {
	s := structuralOf(t, loadCRDFile(t, sweepCRDPath))
	validator := cel.NewValidator(s, true, celconfig.PerCallLimit)
	sweep := func(params, rest string) string {
		return `
metadata: {name: tune}
spec:
  parameters: ` + params + `
  objective: {metric: val_loss, direction: minimize}
  maxTrials: 12
  trialTemplate: {image: i, command: [python, train.py]}
` + rest
	}
	lr := `[{name: lr, type: float, min: "1e-5", max: "0.1", scale: log}]`
	cases := []struct {
		name, obj, old, wantErr string
	}{
		{name: "log float", obj: sweep(lr, "")},
		{name: "int and categorical", obj: sweep(`[{name: layers, type: int, min: "1", max: "8"}, {name: opt, type: categorical, values: [adam, sgd]}]`, "")},
		{name: "min above max", obj: sweep(`[{name: lr, type: float, min: "0.5", max: "0.1"}]`, ""), wantErr: "min must not be greater than max"},
		{name: "log with min 0", obj: sweep(`[{name: lr, type: float, min: "0", max: "0.1", scale: log}]`, ""), wantErr: "log scale needs min > 0"},
		{name: "log with negative min", obj: sweep(`[{name: lr, type: float, min: "-1", max: "0.1", scale: log}]`, ""), wantErr: "log scale needs min > 0"},
		{name: "fractional int", obj: sweep(`[{name: n, type: int, min: "1.5", max: "8"}]`, ""), wantErr: "whole numbers"},
		{name: "float without max", obj: sweep(`[{name: lr, type: float, min: "0.1"}]`, ""), wantErr: "take min and max"},
		{name: "categorical with min", obj: sweep(`[{name: o, type: categorical, values: [a], min: "1"}]`, ""), wantErr: "take min and max"},
		{name: "duplicate categorical values", obj: sweep(`[{name: o, type: categorical, values: [a, a]}]`, ""), wantErr: "Duplicate"},
		{name: "parallelism above maxTrials", obj: sweep(lr, "  parallelism: 13\n"), wantErr: "parallelism must not exceed maxTrials"},
		{name: "parallelism equal to maxTrials", obj: sweep(lr, "  parallelism: 12\n")},
		{name: "KILN_ env in the template", obj: strings.Replace(sweep(lr, ""), "command:", "env: [{name: KILN_PARAM_LR, value: x}], command:", 1), wantErr: "set by Kiln on each trial"},
		{name: "median with hyperband", obj: sweep(lr, "  algorithm: hyperband\n  earlyStopping: {rule: median}\n"), wantErr: "ASHA"},
		{name: "asha without maxSteps", obj: sweep(lr, "  earlyStopping: {rule: asha}\n"), wantErr: "needs earlyStopping.maxSteps"},
		{name: "hyperband without earlyStopping", obj: sweep(lr, "  algorithm: hyperband\n"), wantErr: "needs earlyStopping.maxSteps"},
		{name: "hyperband with maxSteps", obj: sweep(lr, "  algorithm: hyperband\n  earlyStopping: {maxSteps: 27}\n")},
		{name: "parameters changed", obj: sweep(`[{name: lr, type: float, min: "1e-4", max: "0.1", scale: log}]`, ""), old: sweep(lr, ""), wantErr: "parameters are immutable"},
		{name: "parallelism changed", obj: sweep(lr, "  parallelism: 4\n"), old: sweep(lr, "")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := object(t, s, tc.obj)
			var old any
			if tc.old != "" {
				old = object(t, s, tc.old)
			}
			errs, _ := validator.Validate(context.Background(), nil, s, obj, old, celconfig.RuntimeCELCostBudget)
			errs = append(errs, listtype.ValidateListSetsAndMaps(nil, s, obj)...)
			got := errs.ToAggregate()
			switch {
			case tc.wantErr == "" && got != nil:
				t.Fatalf("unexpected errors: %v", got)
			case tc.wantErr != "" && got == nil:
				t.Fatalf("no error, want %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(got.Error(), tc.wantErr):
				t.Fatalf("errors %v, want %q", got, tc.wantErr)
			}
		})
	}
}
