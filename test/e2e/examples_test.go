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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/test/framework"
)

// Every example that holds a TrainingJob, Sweep, Notebook or ModelServer is applied with
// kubectl, as a user would; its TrainingJobs and Sweeps must succeed, its Notebooks and
// ModelServers become Ready on the plane. The folders examples/digits and examples/ddp are not
// globbed: their images live on a real node's registry and on kwok nodes nothing would train;
// test/node's TestExampleWorkflow runs them for real.
func TestExamplesSucceed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(framework.RepoRoot(), "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tools, err := framework.Tools(context.Background(), "kubectl")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := planeKubeconfig(t)
	applied := 0
	for _, file := range files {
		tjs, nbs, sweeps, mss := trainingJobsIn(t, file), notebooksIn(t, file), sweepsIn(t, file), modelServersIn(t, file)
		if len(tjs)+len(nbs)+len(sweeps)+len(mss) == 0 {
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
			for _, ms := range mss {
				ms.Namespace = ns
				waitForMS(t, c, ms, readyIs(v1alpha1.ModelServerReady, metav1.ConditionTrue, v1alpha1.ReasonServing))
			}
		})
	}
	if applied == 0 {
		t.Fatal("no example holds a TrainingJob")
	}
}

// Every source example (examples/build/*) is built with kubectl kiln build into a registry
// the test runs, and what the image holds is run here; then the trainer is trained and the
// server serves its model on the plane, each with --build, by digest.
func TestSourceExamples(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(framework.RepoRoot(), "examples", "build", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no source examples: %v", err)
	}
	k := buildKiln(t)
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) { buildAndRunExample(t, k, dir) })
	}
	t.Run("train and serve with --build", func(t *testing.T) { trainAndServeWithBuild(t, k) })
}

func trainingJobsIn(t *testing.T, file string) []*v1alpha1.TrainingJob {
	return objectsIn(t, file, "TrainingJob", func() *v1alpha1.TrainingJob { return &v1alpha1.TrainingJob{} })
}

func modelServersIn(t *testing.T, file string) []*v1alpha1.ModelServer {
	return objectsIn(t, file, "ModelServer", func() *v1alpha1.ModelServer { return &v1alpha1.ModelServer{} })
}

func objectsIn[T any](t *testing.T, file, kind string, fresh func() *T) []*T {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []*T
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
		if u.GroupVersionKind() != v1alpha1.GroupVersion.WithKind(kind) {
			continue
		}
		obj := fresh()
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, obj)
	}
}
