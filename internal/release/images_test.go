package release

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..")
}

// Two builds of the same source give the same index digest; the index holds both platforms,
// each image runs as 65532 on the shared base, and the amd64 binary runs here.
func TestImagesAreReproducibleMultiArchAndNonRoot(t *testing.T) {
	ctx := context.Background()
	fetch := Images[1]
	if fetch.Name != "kiln-fetch" {
		t.Fatalf("Images[1] is %s; the test builds the small kiln-fetch", fetch.Name)
	}
	o := Options{Source: repoRoot(t), Version: "v0.0.0-test", Revision: "0123456789abcdef", Created: time.Unix(1700000000, 0)}
	first, err := Build(ctx, o, []Image{fetch})
	if err != nil {
		t.Fatal(err)
	}
	second, err := Build(ctx, o, []Image{fetch})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := first[0].Index.Digest()
	d2, _ := second[0].Index.Digest()
	if d1 != d2 {
		t.Fatalf("two builds of the same source differ: %s and %s", d1, d2)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	pushed, err := Push(ctx, first, u.Host, "v0.0.0-test", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := u.Host + "/kiln-fetch@" + d1.String(); pushed[0].Digest != want {
		t.Fatalf("pushed %s, want %s", pushed[0].Digest, want)
	}
	ref, err := name.ParseReference(pushed[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, d := range m.Manifests {
		plats = append(plats, d.Platform.String())
	}
	if strings.Join(plats, ",") != "linux/amd64,linux/arm64" {
		t.Fatalf("index platforms %v, want linux/amd64 and linux/arm64", plats)
	}
	for _, d := range m.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != "65532:65532" || cf.Architecture != d.Platform.Architecture || cf.OS != "linux" {
			t.Errorf("%s: user %q, platform %s/%s", d.Platform, cf.Config.User, cf.OS, cf.Architecture)
		}
		if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != "/usr/local/bin/kiln-fetch" {
			t.Errorf("%s: entrypoint %v", d.Platform, got)
		}
		for k, want := range map[string]string{"org.opencontainers.image.licenses": "Apache-2.0", "org.opencontainers.image.revision": "0123456789abcdef",
			"org.opencontainers.image.version": "v0.0.0-test", "org.opencontainers.image.source": SourceURL} {
			if cf.Config.Labels[k] != want {
				t.Errorf("%s: label %s=%q, want %q", d.Platform, k, cf.Config.Labels[k], want)
			}
		}
		files := extract(t, img, t.TempDir())
		for _, f := range []string{"etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group", "tmp", "usr/local/bin/kiln-fetch"} {
			if _, ok := files[f]; !ok {
				t.Errorf("%s: the image has no /%s", d.Platform, f)
			}
		}
		if h := files["tmp"]; h != nil && h.Mode&0o1777 != 0o1777 {
			t.Errorf("%s: /tmp mode %o, want 1777", d.Platform, h.Mode)
		}
		if d.Platform.Architecture != runtime.GOARCH {
			continue
		}
		root := t.TempDir()
		extract(t, img, root)
		passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
		if !strings.Contains(string(passwd), "nonroot:x:65532:65532:") {
			t.Errorf("/etc/passwd lacks the nonroot user:\n%s", passwd)
		}
		// kiln-fetch takes exactly two arguments; --help gets its usage line and exit code 2.
		out, err := exec.Command(filepath.Join(root, "usr/local/bin/kiln-fetch"), "--help").CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "usage: kiln-fetch URI DIR") {
			t.Errorf("running the image's binary: %v\n%s", err, out)
		}
	}
}

// extract lays the image's files under dir and returns their headers by path.
func extract(t *testing.T, img v1.Image, dir string) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p := strings.TrimSuffix(h.Name, "/")
			files[p] = h
			dst := filepath.Join(dir, p)
			switch h.Typeflag {
			case tar.TypeDir:
				if err := os.MkdirAll(dst, 0o755); err != nil {
					t.Fatal(err)
				}
			case tar.TypeReg:
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(f, tr); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
		}
		rc.Close()
	}
	return files
}
