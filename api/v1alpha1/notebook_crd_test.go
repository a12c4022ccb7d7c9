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

const notebookCRDPath = "../../config/crd/bases/kiln.dev_notebooks.yaml"

func TestNotebookCRDIsValid(t *testing.T) {
	crd := loadCRDFile(t, notebookCRDPath)
	for _, err := range crdvalidation.ValidateCustomResourceDefinition(context.Background(), crd) {
		t.Error(err)
	}
}

func TestNotebookCELRules(t *testing.T) {
	s := structuralOf(t, loadCRDFile(t, notebookCRDPath))
	validator := cel.NewValidator(s, true, celconfig.PerCallLimit)
	const base = `
apiVersion: kiln.dev/v1alpha1
kind: Notebook
metadata: {name: nb}
spec:
  resources: {gpus: 1}
  idleTimeout: 30m
`
	cases := []struct {
		name    string
		obj     string
		old     string
		wantErr string
	}{
		{name: "minimal", obj: base},
		{name: "no spec at all", obj: "metadata: {name: nb}\n"},
		{name: "zero idle timeout", obj: strings.Replace(base, "30m", "0s", 1)},
		{name: "negative idle timeout", obj: strings.Replace(base, "30m", "-5m", 1), wantErr: "idleTimeout must not be negative"},
		{name: "name too long for the pod name", obj: "metadata: {name: " + strings.Repeat("a", 53) + "}\n", wantErr: "at most 52 characters"},
		{name: "volumes", obj: base + `  volumes:
  - {name: imagenet, uri: pvc://datasets/imagenet}
  - {name: model, uri: trainingjob://resnet}
`},
		{name: "unknown volume scheme", obj: base + "  volumes: [{name: a, uri: s3://bucket/x}]\n", wantErr: "uri must start with pvc:// or trainingjob://"},
		{name: "dot-dot volume path", obj: base + "  volumes: [{name: a, uri: pvc://claim/../x}]\n", wantErr: "'..'"},
		{name: "duplicate volume names", obj: base + "  volumes: [{name: a, uri: pvc://x}, {name: a, uri: pvc://y}]\n", wantErr: "Duplicate"},
		{name: "reserved env", obj: base + "  env: [{name: JUPYTER_TOKEN, value: x}]\n", wantErr: "reserved for Kiln"},
		{name: "stopped toggled", obj: base + "  stopped: true\n", old: base},
		{name: "workspace size changed", obj: base + "  workspace: {size: 20Gi}\n", old: base, wantErr: "workspace.size is immutable"},
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
