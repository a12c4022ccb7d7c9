package manager

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Kiln's own pods run under the restricted Pod Security profile, the one its namespace
// enforces: checked here with the admission plugin's own checks on what
// `kubectl apply -k config/default` installs, so a manifest change that would be refused at
// install fails a test first.
func TestPlatformPodsMeetTheRestrictedProfile(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join("..", "..", "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	workloads := 0
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var w appsv1.Deployment // the pod template sits at the same path in every workload kind
		if err := d.Decode(&w); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		switch w.Kind {
		case "Deployment", "StatefulSet", "DaemonSet":
		default:
			continue
		}
		workloads++
		for _, r := range evaluator.EvaluatePod(restricted, &w.Spec.Template.ObjectMeta, &w.Spec.Template.Spec) {
			if !r.Allowed {
				t.Errorf("%s %s breaks the restricted profile: %s (%s)", w.Kind, w.Name, r.ForbiddenReason, r.ForbiddenDetail)
			}
		}
	}
	if workloads == 0 {
		t.Fatal("config/default installs no workloads")
	}
}
