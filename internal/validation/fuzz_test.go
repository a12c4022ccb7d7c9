package validation

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/api/v1alpha1"
)

// FuzzTrainingJob feeds validation arbitrary TrainingJobs (JSON, seeded with the
// examples and the renderer's test inputs): it must never panic, and every error
// must name the field it is about, as admission promises. The Makefile's test
// target runs it for a bounded time.
func FuzzTrainingJob(f *testing.F) {
	var seeds []string
	for _, pattern := range []string{"../../examples/trainingjob-*.yaml", "../render/testdata/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		seeds = append(seeds, files...)
	}
	for _, file := range seeds {
		if strings.HasSuffix(file, ".golden.yaml") {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if j, err := yaml.YAMLToJSON(data); err == nil {
			f.Add(j)
		}
	}
	f.Add([]byte(`{"metadata":{"name":"x"},"spec":{"image":"i","resources":{"gpus":-1},"topology":{"nodes":0,"processesPerNode":-3}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tj := &v1alpha1.TrainingJob{}
		if err := json.Unmarshal(data, tj); err != nil {
			return
		}
		old := tj.DeepCopy()
		old.Spec.Image += "-old"
		for _, e := range append(ValidateTrainingJob(tj), ValidateTrainingJobUpdate(tj, old)...) {
			if e.Field == "" || e.Type == "" {
				t.Fatalf("an error names no field: %#v", e)
			}
		}
	})
}
