package manager

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// Kiln's own pods run under the restricted Pod Security profile, the one its namespace
// enforces: checked here with the admission plugin's own checks, so a manifest change that
// would be refused at install fails a test first.
func TestPlatformPodsMeetTheRestrictedProfile(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	workloads := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var w appsv1.Deployment // the pod template sits at the same path in every workload kind
			if err := d.Decode(&w); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			switch w.Kind {
			case "Deployment", "StatefulSet", "DaemonSet":
			default:
				continue
			}
			workloads++
			for _, r := range evaluator.EvaluatePod(restricted, &w.Spec.Template.ObjectMeta, &w.Spec.Template.Spec) {
				if !r.Allowed {
					t.Errorf("%s: %s %s breaks the restricted profile: %s (%s)", file, w.Kind, w.Name, r.ForbiddenReason, r.ForbiddenDetail)
				}
			}
		}
	}
	if workloads == 0 {
		t.Fatal("no workloads found under config/")
	}
}
