package controlplane

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"kiln.dev/kiln/internal/build"
)

// BinaryImage is an image holding one static binary and nothing else, such as the node's
// pause and DNS images.
type BinaryImage struct {
	// Repo is the repository on the local registry, e.g. "pause".
	Repo string
	// Binary is the file on this machine; it lands at /<base name> in the image.
	Binary string
	// Args follow the binary in the entrypoint.
	Args []string
	// User runs the entrypoint; a numeric UID so kubelet's runAsNonRoot check can verify it.
	User string
}

// imageFormat changes whenever the way BinaryImage is built changes, so cached images are rebuilt.
const imageFormat = "kiln-binary-image-v1"

// Build returns the image, from cacheDir when an image of the same binary was built before.
// The tag is derived from the content, so equal binaries give equal references.
func (b BinaryImage) Build(cacheDir string) (v1.Image, string, error) {
	bin, err := os.ReadFile(b.Binary)
	if err != nil {
		return nil, "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%q\n%s\n%s\n", imageFormat, b.Args, b.User, runtime.GOARCH)
	h.Write(bin)
	tag := hex.EncodeToString(h.Sum(nil))[:16]
	path := filepath.Join(cacheDir, b.Repo+"-"+tag)
	if img, err := build.LoadLayout(path); err == nil {
		return img, tag, nil
	}
	img, err := b.image(bin)
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, "", err
	}
	tmp, err := os.MkdirTemp(cacheDir, ".build-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(tmp)
	if err := build.WriteLayout(tmp, img); err != nil {
		return nil, "", fmt.Errorf("caching image %s: %w", b.Repo, err)
	}
	_ = os.RemoveAll(path)
	if err := os.Rename(tmp, path); err != nil {
		return nil, "", err
	}
	img, err = build.LoadLayout(path)
	return img, tag, err
}

func (b BinaryImage) image(bin []byte) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	base := filepath.Base(b.Binary)
	if err := tw.WriteHeader(&tar.Header{Name: base, Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	return build.EditConfig(img, func(cf *v1.ConfigFile) {
		cf.OS, cf.Architecture = "linux", runtime.GOARCH
		cf.Config.Entrypoint = append([]string{"/" + base}, b.Args...)
		cf.Config.User = b.User
	})
}

// PushImage writes img to the registry at registryAddr (plain HTTP on this machine) as
// repo:tag and returns its reference under LocalRegistryName.
func PushImage(registryAddr, repo, tag string, img v1.Image) (string, error) {
	ref, err := name.ParseReference(registryAddr+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img); err != nil {
		return "", fmt.Errorf("pushing %s to the local registry: %w", repo, err)
	}
	return LocalRegistryName + "/" + repo + ":" + tag, nil
}

// DefaultImageCacheDir keeps built node images between planes.
func DefaultImageCacheDir() string {
	if d := os.Getenv("KILN_IMAGE_CACHE"); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "kiln-images")
	}
	return filepath.Join(base, "kiln", "images")
}
