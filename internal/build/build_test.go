package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testRegistry starts an in-process OCI registry and returns its host:port.
func testRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(discardLogger()))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushBase pushes a small stand-in for a Python runtime image (Docker media types, a
// command, root user, PATH) and returns its digest reference.
func pushBase(t *testing.T, reg string) string {
	t.Helper()
	l, err := layerOf([]entry{{name: "usr", mode: 0o755}, {name: "usr/bin", mode: 0o755}, {name: "usr/bin/python3", data: []byte("#!/bin/sh\n"), mode: 0o755}}, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: l})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin", "PYTHONUNBUFFERED=0"}
	cf.Config.Cmd = []string{"python3"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg + "/library/python:3.12-slim")
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

// copyTree copies a testdata project to a fresh directory, adds a .git directory (which
// must never reach the image) and gives every file a different modification time, as a
// second checkout would have.
func copyTree(t *testing.T, src string, mtime time.Time) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dst, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dst, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

type tarEntry struct {
	Name     string
	Mode     int64
	UID, GID int
	ModTime  int64
	Content  string
}

// lastLayer lists the tar of the image's top layer.
func lastLayer(t *testing.T, img v1.Image) []tarEntry {
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
	var out []tarEntry
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		e := tarEntry{Name: h.Name, Mode: h.Mode, UID: h.Uid, GID: h.Gid, ModTime: h.ModTime.Unix()}
		if h.Typeflag == tar.TypeReg && h.Size < 4096 {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			e.Content = string(b)
		}
		out = append(out, e)
	}
}

func TestBuildPython(t *testing.T) {
	ctx := context.Background()
	reg := testRegistry(t, nil)
	base := pushBase(t, reg)
	var progress bytes.Buffer
	src := copyTree(t, "testdata/python", time.Now())
	res, err := Build(ctx, Options{Dir: src, Base: base, Target: reg + "/team/trainer:v1", Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Reference, reg+"/team/trainer@sha256:") || !strings.HasSuffix(res.Reference, res.Digest) {
		t.Errorf("Reference %q, Digest %q: want %s/team/trainer@<digest>", res.Reference, res.Digest, reg)
	}
	ref, err := name.ParseReference(res.Reference)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pulling what was pushed: %v", err)
	}

	want := []tarEntry{
		{Name: "app/", Mode: 0o755},
		{Name: "app/.dockerignore", Mode: 0o644, Content: "# data and checkpoints stay out of the image\ndata\n*.ckpt\n!keep.ckpt\n"},
		{Name: "app/keep.ckpt", Mode: 0o644, Content: "kept\n"},
		{Name: "app/lib/", Mode: 0o755},
		{Name: "app/lib/util.py", Mode: 0o644, Content: "def greet(name):\n    return \"hello \" + name\n"},
		{Name: "app/requirements.txt", Mode: 0o644, Content: "numpy==2.1.0\n# plotting\nmatplotlib>=3.9\n"},
		{Name: "app/train.py", Mode: 0o644, Content: "from lib.util import greet\n\nif __name__ == \"__main__\":\n    print(greet(\"kiln\"))\n"},
	}
	if diff := cmp.Diff(want, lastLayer(t, img)); diff != "" {
		t.Errorf("source layer (-want +got):\n%s", diff)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Errorf("%d layers, want the base's one plus the source", len(layers))
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	wantCfg := v1.Config{
		Entrypoint: []string{"python3", "/app/train.py"},
		WorkingDir: "/app",
		Env:        []string{"PATH=/usr/local/bin:/usr/bin", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH=/app"},
		User:       NonRootUser,
		Labels:     map[string]string{"dev.kiln.build.language": "python"},
	}
	if diff := cmp.Diff(wantCfg, cf.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if mt, _ := img.MediaType(); mt != types.DockerManifestSchema2 {
		t.Errorf("manifest media type %s: want the base's", mt)
	}
	for _, line := range []string{"detected python (requirements.txt, train.py); entrypoint python3 /app/train.py", "source layer: 6 files under /app", "pushed " + res.Reference} {
		if !strings.Contains(progress.String(), line+"\n") {
			t.Errorf("progress lacks %q:\n%s", line, progress.String())
		}
	}
	if strings.Contains(progress.String(), "warning") {
		t.Errorf("a base pinned by digest gave a warning:\n%s", progress.String())
	}
}

func TestBuildIsReproducible(t *testing.T) {
	ctx := context.Background()
	reg := testRegistry(t, nil)
	base := pushBase(t, reg)
	for _, dir := range []string{"testdata/python", "testdata/node", "testdata/go"} {
		t.Run(dir, func(t *testing.T) {
			b := base
			if strings.HasSuffix(dir, "/go") {
				b = ""
			}
			var digests []string
			for i, mtime := range []time.Time{time.Now(), time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)} {
				res, err := Build(ctx, Options{Dir: copyTree(t, dir, mtime), Base: b, Target: reg + "/team/" + filepath.Base(dir) + ":" + string(rune('a'+i))})
				if err != nil {
					t.Fatal(err)
				}
				digests = append(digests, res.Digest)
			}
			if digests[0] != digests[1] {
				t.Errorf("two builds of the same source gave %s and %s", digests[0], digests[1])
			}
		})
	}
}

func TestBuildGo(t *testing.T) {
	img, p, err := Image(context.Background(), Options{Dir: "testdata/go"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Main != "." {
		t.Errorf("Main = %q", p.Main)
	}
	entries := lastLayer(t, img)
	var names []string
	var bin tarEntry
	for _, e := range entries {
		names = append(names, e.Name)
		if e.Name == "app/go" {
			bin = e
		}
		if e.UID != 0 || e.GID != 0 || e.ModTime != 0 {
			t.Errorf("%s: uid %d gid %d mtime %d, want all 0", e.Name, e.UID, e.GID, e.ModTime)
		}
	}
	if diff := cmp.Diff([]string{"app/", "app/go", "tmp/"}, names); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
	if bin.Mode != 0o755 {
		t.Errorf("binary mode %o, want 755", bin.Mode)
	}
	if layers, _ := img.Layers(); len(layers) != 1 {
		t.Errorf("%d layers on scratch, want the binary's only", len(layers))
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/app/go"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || cf.Config.User != NonRootUser {
		t.Errorf("config os %s arch %s user %q", cf.OS, cf.Architecture, cf.Config.User)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want OCI", mt)
	}

	// The binary in the layer is the program: run it where the host can.
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return
	}
	dir := t.TempDir()
	extractLayer(t, img, dir)
	out, err := exec.Command(filepath.Join(dir, "app", "go")).Output()
	if err != nil || string(out) != "hello from kiln\n" {
		t.Errorf("running the built binary: %q, %v", out, err)
	}
}

func TestBuildGoOtherPlatformAndMain(t *testing.T) {
	img, p, err := Image(context.Background(), Options{Dir: "testdata/go-multi", Main: "./cmd/worker", Platform: "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/app/worker"}, p.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "arm64" {
		t.Errorf("architecture %s, want arm64", cf.Architecture)
	}
	dir := t.TempDir()
	extractLayer(t, img, dir)
	bin, err := os.ReadFile(filepath.Join(dir, "app", "worker"))
	if err != nil {
		t.Fatal(err)
	}
	// ELF header: e_machine 0xB7 is AArch64.
	if len(bin) < 20 || string(bin[1:4]) != "ELF" || bin[18] != 0xB7 {
		t.Errorf("the binary is not an arm64 ELF")
	}

	if _, _, err := Image(context.Background(), Options{Dir: "testdata/go-multi"}); err == nil || !strings.Contains(err.Error(), "choose one with --main") {
		t.Errorf("several main packages without Main: %v", err)
	}
}

func extractLayer(t *testing.T, img v1.Image, dir string) {
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
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, os.FileMode(h.Mode)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBaseByTagWarns(t *testing.T) {
	reg := testRegistry(t, nil)
	pushBase(t, reg)
	var progress bytes.Buffer
	_, p, err := Image(context.Background(), Options{Dir: "testdata/node", Base: reg + "/library/python:3.12-slim", Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	want := "base " + reg + "/library/python:3.12-slim is given by tag, which may move: pin it by digest (" + reg + "/library/python@sha256:...) for reproducible builds"
	if diff := cmp.Diff([]string{want}, p.Notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
	if !strings.Contains(progress.String(), "warning: "+want+"\n") {
		t.Errorf("progress lacks the warning:\n%s", progress.String())
	}
}

func TestRegistryErrors(t *testing.T) {
	ctx := context.Background()
	// A registry that wants credentials nobody gave.
	authReg := testRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	// An address where nothing listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadReg := l.Addr().String()
	l.Close()

	tests := []struct {
		name string
		opts Options
		want string
	}{{
		name: "push unauthorized",
		opts: Options{Dir: "testdata/go", Target: authReg + "/team/app:v1"},
		want: "cannot push to registry " + authReg + ": 401 Unauthorized; log in with `docker login " + authReg + "` (Kiln reads the Docker config's credentials) and check that the account has access to the repository",
	}, {
		name: "base unauthorized",
		opts: Options{Dir: "testdata/python", Base: authReg + "/library/python:3.12", Target: authReg + "/team/app:v1"},
		want: "cannot pull the base " + authReg + "/library/python:3.12 from registry " + authReg + ": 401 Unauthorized; log in with `docker login " + authReg + "` (Kiln reads the Docker config's credentials) and check that the account has access to the repository",
	}, {
		name: "push unreachable",
		opts: Options{Dir: "testdata/go", Target: deadReg + "/team/app:v1"},
		want: "cannot push to registry " + deadReg + ": unreachable (",
	}, {
		name: "base unreachable",
		opts: Options{Dir: "testdata/node", Base: deadReg + "/library/node:22", Target: deadReg + "/team/app:v1"},
		want: "cannot pull the base " + deadReg + "/library/node:22 from registry " + deadReg + ": unreachable (",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Build(ctx, tt.opts)
			var rerr *RegistryError
			if !errors.As(err, &rerr) {
				t.Fatalf("error %v (%T), want a RegistryError", err, err)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error:\n%s\nwant one line starting\n%s", msg, tt.want)
			}
			if strings.Contains(tt.want, "unreachable") && !strings.HasSuffix(msg, "check the registry address and that it is running and reachable from here") {
				t.Errorf("error lacks the hint: %s", msg)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("failing took %s", d)
			}
		})
	}
}

func TestWriteTarball(t *testing.T) {
	img, _, err := Image(context.Background(), Options{Dir: "testdata/go"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := WriteTarball(img, "registry.example/team/hello:v1", path); err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("tarball mode: %v, %v; want 0644", st.Mode(), err)
	}

	// As an OCI layout: the same manifest, byte for byte.
	dir := t.TempDir()
	untar(t, path, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != want || im.Manifests[0].Annotations["io.containerd.image.name"] != "registry.example/team/hello:v1" || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1" {
		t.Fatalf("index.json: %+v, want one manifest %s named registry.example/team/hello:v1", im.Manifests, want)
	}
	fromLayout, err := idx.Image(want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lastLayer(t, img), lastLayer(t, fromLayout)); diff != "" {
		t.Errorf("layer from the OCI layout differs (-built +read):\n%s", diff)
	}

	// As `docker load` reads it: manifest.json with the tag, the same config and layers.
	tag, err := name.NewTag("registry.example/team/hello:v1")
	if err != nil {
		t.Fatal(err)
	}
	fromDocker, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatal(err)
	}
	for what, f := range map[string]func(v1.Image) (v1.Hash, error){"config": (v1.Image).ConfigName, "layer": func(i v1.Image) (v1.Hash, error) {
		ls, err := i.Layers()
		if err != nil {
			return v1.Hash{}, err
		}
		return ls[0].DiffID()
	}} {
		a, err1 := f(img)
		b, err2 := f(fromDocker)
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("%s: built %s, read back %s (%v, %v)", what, a, b, err1, err2)
		}
	}

	// The same image gives the same file.
	path2 := filepath.Join(t.TempDir(), "again.tar")
	if err := WriteTarball(img, "registry.example/team/hello:v1", path2); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(path2)
	if !bytes.Equal(a, b) {
		t.Errorf("two tarballs of one image differ")
	}
}

func untar(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
