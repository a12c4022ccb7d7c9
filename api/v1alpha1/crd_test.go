package v1alpha1_test

import (
	"context"
	"os"
	"strings"
	"testing"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// The generated CRD is checked here the way the API server checks it, so a CEL rule
// that does not compile or exceeds the cost budget fails `go test` rather than
// `kubectl apply`.

const crdPath = "../../config/crd/bases/kiln.dev_trainingjobs.yaml"

func loadCRD(t *testing.T) *apiextensionsinternal.CustomResourceDefinition {
	t.Helper()
	return loadCRDFile(t, crdPath)
}

func loadCRDFile(t *testing.T, path string) *apiextensionsinternal.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read CRD (run controller-gen first): %v", err)
	}
	var v1 apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &v1); err != nil {
		t.Fatalf("parse CRD: %v", err)
	}
	var internal apiextensionsinternal.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1, &internal, nil); err != nil {
		t.Fatalf("convert CRD: %v", err)
	}
	// A CRD read from a file has no status; the API server fills this in.
	internal.Status.StoredVersions = []string{"v1alpha1"}
	return &internal
}

func TestCRDIsValid(t *testing.T) {
	crd := loadCRD(t)
	for _, err := range crdvalidation.ValidateCustomResourceDefinition(context.Background(), crd) {
		t.Error(err)
	}
}

func structural(t *testing.T) *schema.Structural {
	t.Helper()
	return structuralOf(t, loadCRD(t))
}

func structuralOf(t *testing.T, crd *apiextensionsinternal.CustomResourceDefinition) *schema.Structural {
	t.Helper()
	// Conversion moves a schema shared by all versions to spec.validation.
	s, err := schema.NewStructural(crd.Spec.Validation.OpenAPIV3Schema)
	if err != nil {
		t.Fatalf("structural schema: %v", err)
	}
	return s
}

func object(t *testing.T, s *schema.Structural, doc string) map[string]any {
	t.Helper()
	data, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatalf("parse object: %v", err)
	}
	// apimachinery's json keeps integers as int64, as the API server does.
	var obj map[string]any
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		t.Fatalf("parse object: %v", err)
	}
	defaulting.Default(obj, s)
	return obj
}

func TestCELRules(t *testing.T) {
	s := structural(t)
	validator := cel.NewValidator(s, true, celconfig.PerCallLimit)

	const base = `
apiVersion: kiln.dev/v1alpha1
kind: TrainingJob
metadata: {name: train}
spec:
  image: trainer:1
  framework: pytorch
  resources: {gpus: 8}
`
	cases := []struct {
		name    string
		obj     string
		old     string // empty for a create
		wantErr string // substring; empty means valid
	}{
		{name: "minimal pytorch", obj: base},
		{name: "cpu job without resources", obj: `
metadata: {name: cpu}
spec: {image: python:3}
`},
		{name: "name starting with a digit", obj: `
metadata: {name: 1job}
spec: {image: python:3}
`, wantErr: "name must start with a letter"},
		{name: "topology product matches", obj: `
metadata: {name: t}
spec: {image: i, framework: pytorch, resources: {gpus: 8}, topology: {nodes: 2, processesPerNode: 4}}
`},
		{name: "topology product mismatch", obj: `
metadata: {name: t}
spec: {image: i, framework: pytorch, resources: {gpus: 8}, topology: {nodes: 2, processesPerNode: 2}}
`, wantErr: "must equal resources.gpus"},
		{name: "cpu pytorch with topology", obj: `
metadata: {name: t}
spec: {image: i, framework: pytorch, topology: {nodes: 2, processesPerNode: 1}}
`},
		{name: "pytorch without gpus or topology", obj: `
metadata: {name: t}
spec: {image: i, framework: pytorch}
`, wantErr: "needs resources.gpus > 0"},
		{name: "mpi without command", obj: `
metadata: {name: t}
spec: {image: i, framework: mpi, resources: {gpus: 2}}
`, wantErr: "framework mpi needs a command"},
		{name: "data uris", obj: `
metadata: {name: t}
spec:
  image: i
  data:
  - {name: a, uri: pvc://datasets/imagenet}
  - {name: b, uri: s3://bucket/key}
  - {name: c, uri: gs://bucket}
  - {name: d, uri: https://example.com/x.tar}
`},
		{name: "unknown scheme", obj: `
metadata: {name: t}
spec: {image: i, data: [{name: a, uri: "ftp://host/x"}]}
`, wantErr: "uri must start with"},
		{name: "pvc with a dotted name", obj: `
metadata: {name: t}
spec: {image: i, data: [{name: a, uri: "pvc://claim.other-namespace/x"}]}
`, wantErr: "claim in the job's namespace"},
		{name: "dot-dot path", obj: `
metadata: {name: t}
spec: {image: i, data: [{name: a, uri: "pvc://claim/../x"}]}
`, wantErr: "'..'"},
		{name: "duplicate data names", obj: `
metadata: {name: t}
spec: {image: i, data: [{name: a, uri: "s3://b/1"}, {name: a, uri: "s3://b/2"}]}
`, wantErr: "Duplicate"},
		{name: "reserved env", obj: `
metadata: {name: t}
spec: {image: i, env: [{name: KILN_OUTPUT_DIR, value: x}]}
`, wantErr: "reserved for Kiln"},
		{name: "reserved overlay volume", obj: `
metadata: {name: t}
spec: {image: i, podTemplate: {volumes: [{name: kiln-shm, emptyDir: {}}]}}
`, wantErr: "reserved for Kiln"},
		{name: "reserved overlay mount", obj: `
metadata: {name: t}
spec: {image: i, podTemplate: {volumeMounts: [{name: x, mountPath: /dev/shm}]}}
`, wantErr: "reserved for Kiln"},
		{name: "nccl env prefix", obj: `
metadata: {name: t}
spec: {image: i, network: {nccl: {env: {FOO: "1"}}}}
`, wantErr: "must start with NCCL_"},
		{name: "image changed", obj: strings.Replace(base, "trainer:1", "trainer:2", 1), old: base, wantErr: "image is immutable"},
		{name: "gpus changed", obj: strings.Replace(base, "gpus: 8", "gpus: 16", 1), old: base, wantErr: "resources are immutable"},
		{name: "framework changed", obj: strings.Replace(base, "pytorch", "jax", 1), old: base, wantErr: "framework is immutable"},
		{name: "checkpoints added", obj: base + "  checkpoints: {size: 10Gi}\n", old: base, wantErr: "checkpoints cannot be added"},
		{name: "suspend toggled", obj: base + "  suspend: true\n", old: base},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := object(t, s, tc.obj)
			var old any
			if tc.old != "" {
				old = object(t, s, tc.old)
			}
			errs, _ := validator.Validate(context.Background(), nil, s, obj, old, celconfig.RuntimeCELCostBudget)
			// Duplicate map-list keys are a schema error, not a CEL one.
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
