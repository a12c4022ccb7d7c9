package render

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/api/v1alpha1"
)

// Each testdata/notebook/<case>.yaml holds a Notebook; <case>.golden.yaml is the
// expected output.
func TestNotebookGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/notebook/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no inputs")
	}
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.yaml") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			nb := &v1alpha1.Notebook{}
			if err := yaml.UnmarshalStrict(data, nb); err != nil {
				t.Fatal(err)
			}
			objs, err := Notebook(nb, NotebookOptions{OwnerReferences: true, RuntimeClassName: "nvidia", Rand: rand.NewChaCha8([32]byte{'n', 'b'})})
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			var b strings.Builder
			for i, o := range objs.List() {
				if i > 0 {
					b.WriteString("---\n")
				}
				out, err := yaml.Marshal(o)
				if err != nil {
					t.Fatal(err)
				}
				b.Write(out)
			}
			golden := filepath.Join("testdata", "notebook", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/render -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("%s differs (-want +got); run go test ./internal/render -update if the change is intended:\n%s", golden, diff)
			}
		})
	}
}

func TestNotebookKeepsTheStoredToken(t *testing.T) {
	nb := &v1alpha1.Notebook{}
	nb.Name, nb.Namespace = "nb", "ns"
	objs, err := Notebook(nb, NotebookOptions{Token: "stored"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(objs.Secret.Data[v1alpha1.NotebookTokenKey]); got != "stored" {
		t.Errorf("token %q, want the stored one", got)
	}
	again, err := Notebook(nb, NotebookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := Notebook(nb, NotebookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := string(again.Secret.Data[v1alpha1.NotebookTokenKey]), string(other.Secret.Data[v1alpha1.NotebookTokenKey])
	if len(a) != 48 || a == b {
		t.Errorf("generated tokens %q and %q: want two different 48-digit ones", a, b)
	}
}

func TestNotebookVolumeClaim(t *testing.T) {
	for _, tc := range []struct {
		uri, claim, sub, err string
	}{
		{uri: "pvc://datasets", claim: "datasets"},
		{uri: "pvc://datasets/imagenet/train/", claim: "datasets", sub: "imagenet/train"},
		{uri: "trainingjob://resnet", claim: "resnet-output"},
		{uri: "trainingjob://resnet/x", err: "must be trainingjob://<name>"},
		{uri: "pvc:///x", err: "names no claim"},
		{uri: "s3://bucket", err: "unknown scheme s3://"},
		{uri: "datasets", err: "is not pvc://"},
	} {
		claim, sub, err := NotebookVolumeClaim(tc.uri)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if claim != tc.claim || sub != tc.sub || !strings.Contains(gotErr, tc.err) || (tc.err == "") != (err == nil) {
			t.Errorf("%s: got %q %q %v, want %q %q %q", tc.uri, claim, sub, err, tc.claim, tc.sub, tc.err)
		}
	}
}

func TestNotebookMountClash(t *testing.T) {
	nb := &v1alpha1.Notebook{Spec: v1alpha1.NotebookSpec{Volumes: []v1alpha1.NotebookVolume{
		{Name: "a", URI: "pvc://a", MountPath: "/home/jovyan"},
	}}}
	nb.Name = "nb"
	if _, err := Notebook(nb, NotebookOptions{}); err == nil || !strings.Contains(err.Error(), "already used by spec.workspace.mountPath") {
		t.Fatalf("got %v, want a clash with the workspace", err)
	}
}
