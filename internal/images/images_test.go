package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

type entry struct {
	Name     string
	Type     byte
	Mode     int64
	UID, GID int
	Link     string
	Body     string
}

func readTar(t *testing.T, r io.Reader) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(Epoch) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, Epoch)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner names %q/%q, want none", h.Name, h.Uname, h.Gname)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, entry{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid, Link: h.Linkname, Body: string(body)})
	}
}

func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, body string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("usr/bin/tool", "#!/bin/sh\n", 0o750)
	write("etc/zz", "last", 0o600)
	write("etc/aa", "first", 0o640)
	write("var/log/build.log", "noise", 0o644)
	write(".hidden", "dot", 0o644)
	if err := os.Symlink("usr/bin", filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "etc/aa"), filepath.Join(dir, "etc/ab")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestWriteTar(t *testing.T) {
	tests := []struct {
		name string
		opts TarOptions
		want []entry
	}{{
		name: "root filesystem keeps modes and links, skips what it is told",
		opts: TarOptions{Skip: skipInRootfs},
		want: []entry{
			{Name: ".hidden", Type: tar.TypeReg, Mode: 0o644, Body: "dot"},
			{Name: "bin", Type: tar.TypeSymlink, Mode: 0o777, Link: "usr/bin"},
			{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "etc/aa", Type: tar.TypeReg, Mode: 0o640, Body: "first"},
			{Name: "etc/ab", Type: tar.TypeLink, Mode: 0o640, Link: "etc/aa"},
			{Name: "etc/zz", Type: tar.TypeReg, Mode: 0o600, Body: "last"},
			{Name: "usr/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "usr/bin/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "usr/bin/tool", Type: tar.TypeReg, Mode: 0o750, Body: "#!/bin/sh\n"},
			{Name: "var/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "var/log/", Type: tar.TypeDir, Mode: 0o755},
		},
	}, {
		name: "source under a prefix, normalised",
		opts: TarOptions{Prefix: "/app/src", Normalize: true, Skip: func(rel string, _ bool) bool { return rel == ".hidden" || rel == "var" }},
		want: []entry{
			{Name: "app/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "app/src/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "app/src/bin", Type: tar.TypeSymlink, Mode: 0o777, Link: "usr/bin"},
			{Name: "app/src/etc/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "app/src/etc/aa", Type: tar.TypeReg, Mode: 0o644, Body: "first"},
			{Name: "app/src/etc/ab", Type: tar.TypeLink, Mode: 0o644, Link: "app/src/etc/aa"},
			{Name: "app/src/etc/zz", Type: tar.TypeReg, Mode: 0o644, Body: "last"},
			{Name: "app/src/usr/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "app/src/usr/bin/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "app/src/usr/bin/tool", Type: tar.TypeReg, Mode: 0o755, Body: "#!/bin/sh\n"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree(t)
			var first bytes.Buffer
			if err := WriteTar(&first, dir, tt.opts); err != nil {
				t.Fatal(err)
			}
			got := readTar(t, bytes.NewReader(first.Bytes()))
			// Owners are the test's (root in CI); only their consistency matters here.
			for i := range got {
				got[i].UID, got[i].GID = 0, 0
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			// Reproducible: new mtimes on disk change nothing.
			later := time.Now().Add(time.Hour)
			_ = filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
				_ = os.Chtimes(p, later, later)
				return nil
			})
			var second bytes.Buffer
			if err := WriteTar(&second, dir, tt.opts); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first.Bytes(), second.Bytes()) {
				t.Error("the same folder with other mtimes gave a different tar stream")
			}
		})
	}
}

func TestKey(t *testing.T) {
	a := Base{Name: "x", Suite: "bookworm", Packages: []string{"python3", "python3-sklearn"}}
	tests := []struct {
		name string
		b    Base
		same bool
	}{
		{"package order does not matter", Base{Name: "x", Suite: "bookworm", Packages: []string{"python3-sklearn", "python3"}}, true},
		{"the name does not matter", Base{Name: "y", Suite: "bookworm", Packages: []string{"python3", "python3-sklearn"}}, true},
		{"another package", Base{Name: "x", Suite: "bookworm", Packages: []string{"python3", "python3-torch"}}, false},
		{"another suite", Base{Name: "x", Suite: "trixie", Packages: []string{"python3", "python3-sklearn"}}, false},
	}
	for _, tt := range tests {
		if got := a.Key() == tt.b.Key(); got != tt.same {
			t.Errorf("%s: same key = %v, want %v", tt.name, got, tt.same)
		}
	}
}

// standInDebootstrap is a script taking debootstrap's arguments that makes a tiny root
// filesystem and counts its runs, so the test sees whether the cache was used; the real
// debootstrap takes minutes and is exercised by the real-node tests (test/node).
func standInDebootstrap(t *testing.T, counter string) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "debootstrap")
	body := `#!/bin/sh
set -e
echo run >> ` + counter + `
for last; do :; done
dir=$4
mkdir -p "$dir/etc" "$dir/var/cache/apt/archives" "$dir/dev"
echo "$1 $2 $3" > "$dir/etc/debootstrap-args"
echo junk > "$dir/var/cache/apt/archives/python3.deb"
echo "I: Base system installed successfully."
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

func TestBaseIsBuiltOnceAndPushed(t *testing.T) {
	ctx := context.Background()
	counter := filepath.Join(t.TempDir(), "runs")
	var progress bytes.Buffer
	b := &Builder{Dir: t.TempDir(), Debootstrap: standInDebootstrap(t, counter), Out: &progress}
	base := Base{Name: "python-test", Suite: "bookworm", Packages: []string{"python3"}, About: "seconds"}

	img, err := b.Base(ctx, base)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	again, err := b.Base(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	runs, _ := os.ReadFile(counter)
	if n := strings.Count(string(runs), "run"); n != 1 {
		t.Errorf("debootstrap ran %d times, want 1 (the second Base comes from the cache)", n)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("cached image %s differs from the built one %s", d2, d1)
	}
	if !strings.Contains(progress.String(), "base image python-test: cached") {
		t.Errorf("progress does not say the cache was used:\n%s", progress.String())
	}
	cache, _ := b.CachePath(base)
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(cache), ".build-*")); len(matches) > 0 {
		t.Errorf("build folders left behind: %v", matches)
	}

	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "train.py"), []byte("print('hi')\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	app, err := AddDir(img, src, "/app")
	if err != nil {
		t.Fatal(err)
	}

	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	pinned, err := Push(ctx, app, host+"/kiln/digits:latest")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(pinned, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ref.(name.Digest); !ok {
		t.Fatalf("Push returned %s, want a reference by digest", pinned)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.WorkingDir != "/app" || !cf.Created.Time.Equal(Epoch) {
		t.Errorf("config: workingDir %q created %v", cf.Config.WorkingDir, cf.Created)
	}
	layers, err := pulled.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("%d layers (%v), want the base's and the source's", len(layers), err)
	}
	want := [][]entry{{
		{Name: "dev/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/debootstrap-args", Type: tar.TypeReg, Mode: 0o644, Body: "--variant=minbase --include=python3 bookworm\n"},
		{Name: "var/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "var/cache/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "var/cache/apt/", Type: tar.TypeDir, Mode: 0o755},
	}, {
		{Name: "app/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "app/train.py", Type: tar.TypeReg, Mode: 0o644, Body: "print('hi')\n"},
	}}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		got := readTar(t, rc)
		rc.Close()
		for j := range got {
			got[j].UID, got[j].GID = 0, 0
		}
		if diff := cmp.Diff(want[i], got); diff != "" {
			t.Errorf("layer %d (-want +got):\n%s", i, diff)
		}
	}
	// The same source on the same base is the same image: a rebuild pushes nothing new.
	app2, err := AddDir(again, src, "/app")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := digest(t, app), digest(t, app2); a != b {
		t.Errorf("rebuilding the same source gave %s, then %s", a, b)
	}
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Publish pushes the base (by its key and as latest) and the example image, and names the
// example image under kiln.local by digest.
func TestPublish(t *testing.T) {
	ctx := context.Background()
	b := &Builder{Dir: t.TempDir(), Debootstrap: standInDebootstrap(t, filepath.Join(t.TempDir(), "runs"))}
	examples := t.TempDir()
	if err := os.MkdirAll(filepath.Join(examples, "demo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(examples, "demo", "train.py"), []byte("print(1)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	e := Example{Repo: "kiln/demo", Dir: "demo", Base: Base{Name: "python-test", Suite: "bookworm", Packages: []string{"python3"}}}

	ref, err := b.Publish(ctx, e, examples, host)
	if err != nil {
		t.Fatal(err)
	}
	repo, digest, ok := strings.Cut(ref, "@")
	if repo != "kiln.local/kiln/demo" || !ok || !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("Publish returned %q, want kiln.local/kiln/demo@sha256:…", ref)
	}
	for _, r := range []string{host + "/kiln/demo@" + digest, host + "/kiln/python-test:latest", host + "/kiln/python-test:" + e.Base.Key()} {
		parsed, err := name.ParseReference(r, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Head(parsed); err != nil {
			t.Errorf("%s is not in the registry: %v", r, err)
		}
	}
}
