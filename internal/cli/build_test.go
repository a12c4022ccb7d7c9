package cli

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/internal/build"
)

// sources holds the build package's sample projects.
const sources = "../build/testdata"

func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func copyProject(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dst, os.DirFS(filepath.Join(sources, name))); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestBuildPushesAndPrintsTheDigestReference(t *testing.T) {
	reg := testRegistry(t)
	out, errOut, err := run(t, "build", filepath.Join(sources, "go"), "--image", reg+"/team/hello:v1")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	ref := strings.TrimSpace(out)
	if !strings.HasPrefix(ref, reg+"/team/hello@sha256:") || strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout %q: want only the digest reference", out)
	}
	for _, want := range []string{"detected go (go.mod, *.go (package main)); entrypoint /app/go\n", "compiling . for linux/amd64\n", "pushing to " + reg + "/team/hello:v1\n", "pushed " + ref + "\n"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(r); err != nil {
		t.Errorf("the printed reference cannot be pulled: %v", err)
	}
	// The tag moved to the same image.
	tagged, err := remote.Head(mustRef(t, reg+"/team/hello:v1"))
	if err != nil || tagged.Digest.String() != strings.TrimPrefix(ref, reg+"/team/hello@") {
		t.Errorf("tag v1 points at %v (%v), want %s", tagged, err, ref)
	}
}

// kiln.local is the local Kiln's registry as its node knows it: images named so are pushed to
// that registry's address on this machine, bases pulled from it, and the printed reference
// keeps the name pods pull by.
func TestBuildForTheLocalKiln(t *testing.T) {
	reg := testRegistry(t)
	running := func() (string, error) { return reg, nil }
	for _, tc := range []struct {
		name        string
		registry    func() (string, error)
		args        []string
		wantRef     string // prefix of stdout
		wantTag     string // on reg, at the printed digest
		wantErrText string
	}{
		{"pushed to the local registry", running,
			[]string{"build", filepath.Join(sources, "go"), "--image", "kiln.local/team/hello:v1"},
			"kiln.local/team/hello@sha256:", reg + "/team/hello:v1", ""},
		{"built on a base from it", running,
			[]string{"build", filepath.Join(sources, "go"), "--image", "kiln.local/team/on-base:v1", "--base", "kiln.local/team/hello:v1"},
			"kiln.local/team/on-base@sha256:", reg + "/team/on-base:v1", ""},
		{"no local Kiln", func() (string, error) { return "", errors.New("the local Kiln is not running") },
			[]string{"build", filepath.Join(sources, "go"), "--image", "kiln.local/team/hello:v1"},
			"", "", "--image kiln.local/team/hello:v1: the local Kiln is not running"},
		{"no local Kiln for the base", func() (string, error) { return "", errors.New("the local Kiln is not running") },
			[]string{"build", filepath.Join(sources, "go"), "--image", reg + "/team/x:v1", "--base", "kiln.local/kiln/python-sklearn:latest"},
			"", "", "--base kiln.local/kiln/python-sklearn:latest: the local Kiln is not running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			was := localRegistry
			localRegistry = tc.registry
			t.Cleanup(func() { localRegistry = was })
			out, errOut, err := run(t, tc.args...)
			if tc.wantErrText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrText) {
					t.Fatalf("error %v, want %q", err, tc.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			ref := strings.TrimSpace(out)
			if !strings.HasPrefix(ref, tc.wantRef) {
				t.Fatalf("stdout %q, want %s…", out, tc.wantRef)
			}
			tagged, err := remote.Head(mustRef(t, tc.wantTag))
			if err != nil || "@"+tagged.Digest.String() != ref[strings.Index(ref, "@"):] {
				t.Errorf("%s is %v (%v), want the printed %s", tc.wantTag, tagged, err, ref)
			}
		})
	}
}

func TestBuildImageTarNeedsNoRegistry(t *testing.T) {
	tarPath := filepath.Join(t.TempDir(), "hello.tar")
	out, errOut, err := run(t, "build", filepath.Join(sources, "go"), "--image", "registry.invalid/team/hello:v1", "--image-tar", tarPath)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	img, _, err := build.Image(context.Background(), build.Options{Dir: filepath.Join(sources, "go")})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if strings.TrimSpace(out) != d.String() {
		t.Errorf("stdout %q, want the digest %s", out, d)
	}
	if got := tarIndexDigest(t, tarPath); got != d.String() {
		t.Errorf("tarball holds %s, want %s", got, d)
	}
}

// tarIndexDigest reads index.json from an image tarball.
func tarIndexDigest(t *testing.T, path string) string {
	t.Helper()
	dir := t.TempDir()
	if err := untarFile(path, dir); err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("index.json %s: %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(idx.Manifests[0].Digest, "sha256:"))); err != nil {
		t.Errorf("the manifest blob is missing: %v", err)
	}
	return idx.Manifests[0].Digest
}

func TestInit(t *testing.T) {
	for _, lang := range []string{"python", "go", "node"} {
		t.Run(lang, func(t *testing.T) {
			dir := copyProject(t, lang)
			os.Remove(filepath.Join(dir, ".dockerignore"))
			out, errOut, err := run(t, "init", dir)
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			golden(t, "init-"+lang+".golden.txt", strings.ReplaceAll(out, dir, "DIR"))
			for _, f := range []string{"Dockerfile", ".dockerignore"} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				golden(t, "init-"+lang+"."+strings.TrimPrefix(f, ".")+".golden", string(b))
			}
			// A second init keeps what is there, unless forced.
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, _, err := run(t, "init", dir); err == nil || err.Error() != filepath.Join(dir, "Dockerfile")+" already exists: keep it, or overwrite it with --force" {
				t.Errorf("init over an existing Dockerfile: %v", err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "Dockerfile")); string(b) != "FROM mine\n" {
				t.Errorf("init without --force changed the Dockerfile")
			}
			if _, _, err := run(t, "init", dir, "--force"); err != nil {
				t.Fatalf("init --force: %v", err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "Dockerfile")); string(b) == "FROM mine\n" {
				t.Errorf("init --force kept the old Dockerfile")
			}
		})
	}
}

func TestGenerateWorkflow(t *testing.T) {
	out, errOut, err := run(t, "generate-workflow", "--image", "ghcr.io/team/iris", "--manifest", "kiln/modelserver.yaml",
		"--dir", "server", "--base", "gcr.io/distroless/static-debian12@sha256:0000000000000000000000000000000000000000000000000000000000000000", "--file", "-")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	golden(t, "generate-workflow.golden.yaml", out)
	var wf map[string]any
	if err := yaml.Unmarshal([]byte(out), &wf); err != nil {
		t.Fatalf("the workflow is not YAML: %v", err)
	}

	path := filepath.Join(t.TempDir(), ".github", "workflows", "kiln.yaml")
	if _, _, err := run(t, "generate-workflow", "--image", "ghcr.io/team/iris", "--manifest", "m.yaml", "--file", path); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "generate-workflow", "--image", "ghcr.io/team/iris", "--manifest", "m.yaml", "--file", path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second write without --force: %v", err)
	}
}

// train --build with a client dry run builds but does not push, and the printed job runs
// the image by digest.
func TestTrainBuildDryRun(t *testing.T) {
	reg := testRegistry(t)
	out, errOut, err := run(t, "train", "hello", "--build", filepath.Join(sources, "go"), "--image", reg+"/team/hello:v1", "--dry-run=client", "-o", "yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	img, _, err := build.Image(context.Background(), build.Options{Dir: filepath.Join(sources, "go")})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if want := "  image: " + reg + "/team/hello@" + d.String() + "\n"; !strings.Contains(out, want) {
		t.Errorf("the job does not run the built digest (%s):\n%s", want, out)
	}
	if !strings.Contains(errOut, "not pushed (dry run)") {
		t.Errorf("stderr: %s", errOut)
	}
	if _, err := remote.Head(mustRef(t, reg+"/team/hello:v1")); err == nil {
		t.Errorf("a dry run pushed the image")
	}

	out, errOut, err = run(t, "serve", "hello", "--model", "pvc://models/hello", "--port", "8080", "--build", filepath.Join(sources, "go"), "--image", reg+"/team/hello:v1", "--dry-run=client", "-o", "yaml")
	if err != nil {
		t.Fatalf("serve: %v\n%s", err, errOut)
	}
	if want := "    image: " + reg + "/team/hello@" + d.String() + "\n"; !strings.Contains(out, want) {
		t.Errorf("the ModelServer does not run the built digest (%s):\n%s", want, out)
	}
}

// export --image-tar writes, beside the manifests, the image they run, pulled from its
// registry; --set-image puts a build's digest reference in.
func TestExportImageTar(t *testing.T) {
	reg := testRegistry(t)
	ref, _, err := run(t, "build", filepath.Join(sources, "go"), "--image", reg+"/team/hello:v1")
	if err != nil {
		t.Fatal(err)
	}
	ref = strings.TrimSpace(ref)
	for _, file := range []string{"testdata/pytorch.yaml", "testdata/modelserver.yaml"} {
		t.Run(file, func(t *testing.T) {
			tarPath := filepath.Join(t.TempDir(), "image.tar")
			out, errOut, err := run(t, "export", "-f", file, "--set-image", ref, "--image-tar", tarPath)
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			if !strings.Contains(out, "image: "+ref+"\n") {
				t.Errorf("the manifests do not run %s:\n%s", ref, out)
			}
			if diff := cmp.Diff("wrote "+ref+" to "+tarPath+"\n", errOut); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			if got := tarIndexDigest(t, tarPath); got != strings.TrimPrefix(ref, reg+"/team/hello@") {
				t.Errorf("tarball holds %s, want %s", got, ref)
			}
		})
	}
	_, _, err = run(t, "export", "-f", "testdata/pytorch.yaml", "--set-image", "127.0.0.1:1/none/here:v1", "--image-tar", filepath.Join(t.TempDir(), "x.tar"))
	if err == nil || !strings.HasPrefix(err.Error(), "cannot pull 127.0.0.1:1/none/here:v1 from registry 127.0.0.1:1: unreachable (") {
		t.Errorf("export --image-tar from an unreachable registry: %v", err)
	}
}

func TestBuildBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"build", sources + "/go"}, "--image is required: where to push, e.g. registry.example/team/app:tag"},
		{[]string{"build", sources + "/empty", "--image", "r.example/a:b"}, "no project found in " + sources + "/empty: looked for go.mod (Go), requirements.txt or pyproject.toml (Python) and package.json (Node) at its top"},
		{[]string{"build", sources + "/go-multi", "--image", "r.example/a:b", "--image-tar", "/dev/null"}, sources + "/go-multi: several main packages (./cmd/api, ./cmd/worker): choose one with --main"},
		{[]string{"build", sources + "/go", "--image", "r.example/a@sha256:0000000000000000000000000000000000000000000000000000000000000000"}, "names a digest; push to a tag or a repository"},
		{[]string{"train", "--build", sources + "/go", "--gpus", "1"}, "--image is required"},
		{[]string{"serve", "x", "--model", "pvc://m", "--preset", "mlserver", "--build", sources + "/go"}, "--build needs --image"},
		{[]string{"generate-workflow", "--image", "ghcr.io/team/iris:v1", "--manifest", "m.yaml"}, "must be a repository without tag or digest"},
		{[]string{"generate-workflow", "--image", "ghcr.io/team/iris"}, "--manifest is required"},
		{[]string{"init", sources + "/empty"}, "no project found"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, _, err := run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func untarFile(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
