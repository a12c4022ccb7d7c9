package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/test/framework"
)

// Every example that holds a TrainingJob or a Notebook is applied with kubectl, as a user
// would, and must succeed (or, for a Notebook, become Ready) on the plane.
func TestExamplesSucceed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(framework.RepoRoot(), "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tools, err := framework.Tools(context.Background(), "kubectl")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, plane.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	applied := 0
	for _, file := range files {
		tjs, nbs, sweeps := trainingJobsIn(t, file), notebooksIn(t, file), sweepsIn(t, file)
		if len(tjs)+len(nbs)+len(sweeps) == 0 {
			continue
		}
		applied++
		t.Run(filepath.Base(file), func(t *testing.T) {
			c, ns := kilnClient(t), namespace(t)
			out, err := exec.Command(tools["kubectl"], "--kubeconfig", kubeconfig, "-n", ns, "apply", "-f", file).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl apply -f %s: %v\n%s", file, err, out)
			}
			for _, tj := range tjs {
				tj.Namespace = ns
				waitFor(t, c, tj, inState(v1alpha1.StateSucceeded))
			}
			for _, sw := range sweeps {
				sw.Namespace = ns
				waitForSweepExample(t, c, sw)
			}
			for _, nb := range nbs {
				nb.Namespace = ns
				waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookReady))
			}
		})
	}
	if applied == 0 {
		t.Fatal("no example holds a TrainingJob")
	}
}

func trainingJobsIn(t *testing.T, file string) []*v1alpha1.TrainingJob {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []*v1alpha1.TrainingJob
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var u unstructured.Unstructured
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if u.GroupVersionKind() != v1alpha1.GroupVersion.WithKind("TrainingJob") {
			continue
		}
		tj := &v1alpha1.TrainingJob{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, tj); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, tj)
	}
}
