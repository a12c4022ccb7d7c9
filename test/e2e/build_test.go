package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/build"
	"kiln.dev/kiln/test/framework"
)

// startRegistry runs an OCI registry in the test process; the CLI reaches it over plain
// HTTP on the loopback address.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushStandInBase pushes an empty linux/amd64 image as the Python base: the plane's nodes
// are simulated and run no image, and the test has no network to fetch a real one.
func pushStandInBase(t *testing.T, reg string) string {
	t.Helper()
	cf, err := empty.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	img, err := mutate.ConfigFile(empty.Image, cf)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg + "/library/python-standin:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Digest(d.String()).String()
}

// pushedRef is the digest reference kubectl kiln build printed: its last line.
func pushedRef(t *testing.T, out, repo string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ref := lines[len(lines)-1]
	if !strings.HasPrefix(ref, repo+"@sha256:") {
		t.Fatalf("build did not end with %s@sha256:...:\n%s", repo, out)
	}
	return ref
}

func buildAndRunExample(t *testing.T, k kiln, dir string) {
	reg := startRegistry(t)
	repo := reg + "/examples/" + filepath.Base(dir)
	args := []string{"build", dir, "--image", repo + ":e2e"}
	if p, err := build.Detect(dir); err == nil && p.Language == "python" {
		args = append(args, "--base", pushStandInBase(t, reg))
	}
	out, err := k.run(t, args...)
	if err != nil {
		t.Fatalf("kubectl kiln build %s: %v\n%s", dir, err, out)
	}
	ref, err := name.ParseReference(pushedRef(t, out, repo))
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	extractTopLayer(t, img, root)
	// The image's entrypoint, run here with /app mapped to the extracted layer.
	args = nil
	for _, a := range cf.Config.Entrypoint {
		args = append(args, strings.Replace(a, build.AppDir, filepath.Join(root, "app"), 1))
	}
	if len(args) == 0 {
		t.Fatalf("%s has no entrypoint", ref)
	}
	switch cf.Config.Labels["dev.kiln.build.language"] {
	case "python":
		if _, err := exec.LookPath(args[0]); err != nil {
			t.Skipf("no %s here to run the trainer with", args[0])
		}
		outDir := t.TempDir()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "KILN_OUTPUT_DIR="+outDir)
		got, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(got), "w=2.0") {
			t.Fatalf("running the trainer: %v\n%s", err, got)
		}
		if _, err := os.Stat(filepath.Join(outDir, "model.json")); err != nil {
			t.Errorf("the trainer saved no model: %v", err)
		}
	case "go":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		modelDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(modelDir, "model.json"), []byte(`{"W":3,"B":0.5}`), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "KILN_PORT="+port, "KILN_MODEL_DIR="+modelDir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		framework.Eventually(t, time.Minute, func() error {
			resp, err := http.Get("http://127.0.0.1:" + port + "/predict?x=2")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var y map[string]float64
			if err := json.NewDecoder(resp.Body).Decode(&y); err != nil {
				return err
			}
			if y["y"] != 6.5 {
				return fmt.Errorf("predict x=2: %v, want y=6.5", y)
			}
			return nil
		})
	default:
		t.Fatalf("%s: unexpected language %q", dir, cf.Config.Labels["dev.kiln.build.language"])
	}
}

func extractTopLayer(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, b, os.FileMode(h.Mode)&0o777)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// trainAndServeWithBuild trains the trainer example and serves its model with the server
// example, each built and pushed by --build and run by digest; then exports the job with
// its image.
func trainAndServeWithBuild(t *testing.T, k kiln) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	reg := startRegistry(t)
	kubeconfig := planeKubeconfig(t)
	kiln := func(args ...string) (string, error) {
		return k.run(t, append([]string{"--kubeconfig=" + kubeconfig, "-n", ns}, args...)...)
	}
	examples := filepath.Join(framework.RepoRoot(), "examples", "build")

	out, err := kiln("train", "line", "--build", filepath.Join(examples, "trainer"), "--image", reg+"/team/trainer:v1",
		"--base", pushStandInBase(t, reg), "--output-volume", "1Gi", "--watch", "--timeout", "3m")
	if err != nil {
		t.Fatalf("train --build: %v\n%s", err, out)
	}
	for _, want := range []string{"detected python (requirements.txt, train.py); entrypoint python3 /app/train.py", "trainingjob.kiln.dev/line created", "line succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("train --build output lacks %q:\n%s", want, out)
		}
	}
	tj := &v1alpha1.TrainingJob{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "line"}, tj); err != nil {
		t.Fatal(err)
	}
	trainerDigest := requirePushed(t, tj.Spec.Image, reg+"/team/trainer", out)

	out, err = kiln("serve", "line", "--build", filepath.Join(examples, "server"), "--image", reg+"/team/server:v1",
		"--port", "8080", "--model", "trainingjob://line", "--cpu", "100m")
	if err != nil {
		t.Fatalf("serve --build: %v\n%s", err, out)
	}
	ms := &v1alpha1.ModelServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "line"}}
	ms = waitForMS(t, c, ms, readyIs(v1alpha1.ModelServerReady, metav1.ConditionTrue, v1alpha1.ReasonServing))
	requirePushed(t, ms.Spec.Runtime.Image, reg+"/team/server", out)
	framework.Eventually(t, time.Minute, func() error {
		var list appsv1.DeploymentList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelModelServer: "line"}); err != nil {
			return err
		}
		if len(list.Items) != 1 || list.Items[0].Spec.Template.Spec.Containers[0].Image != ms.Spec.Runtime.Image {
			return fmt.Errorf("deployments %v do not run %s", list.Items, ms.Spec.Runtime.Image)
		}
		return nil
	})

	// The job leaves the platform whole: manifests on stdout, its image in a tarball.
	tarPath := filepath.Join(t.TempDir(), "line.tar")
	out, err = kiln("export", "line", "--image-tar", tarPath)
	if err != nil || !strings.Contains(out, "image: "+tj.Spec.Image) || !strings.Contains(out, "wrote "+tj.Spec.Image+" to "+tarPath) {
		t.Fatalf("export --image-tar: %v\n%s", err, out)
	}
	if got := tarballManifest(t, tarPath); got != trainerDigest {
		t.Errorf("the tarball holds %s, want the job's image %s", got, trainerDigest)
	}
}

// requirePushed checks that image is repo@digest, printed by the command and present in the
// registry, and returns the digest.
func requirePushed(t *testing.T, image, repo, out string) string {
	t.Helper()
	digest, ok := strings.CutPrefix(image, repo+"@")
	if !ok || !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("image %q is not %s@sha256:...", image, repo)
	}
	if !strings.Contains(out, "pushed "+image) {
		t.Errorf("output does not say %s was pushed:\n%s", image, out)
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref); err != nil {
		t.Errorf("%s is not in the registry: %v", image, err)
	}
	return digest
}

// tarballManifest reads the manifest digest from an image tarball's index.json.
func tarballManifest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no index.json in %s: %v", path, err)
		}
		if h.Name != "index.json" {
			continue
		}
		var idx v1.IndexManifest
		if err := json.NewDecoder(tr).Decode(&idx); err != nil || len(idx.Manifests) != 1 {
			t.Fatalf("index.json: %+v, %v", idx, err)
		}
		return idx.Manifests[0].Digest.String()
	}
}
