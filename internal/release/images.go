// Package release builds what a Kiln release is made of: Kiln's own images (the manager, the
// fetch step, the build step), reproducible multi-arch OCI image indexes on a minimal non-root
// base made here rather than pulled, and the install manifests and Helm chart pinned to them by
// digest. Nothing is pulled from an image registry: the base's CA certificates come from the
// build host (Debian's ca-certificates).
package release

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is one of Kiln's own images, built from a main package of this repository.
type Image struct {
	// Name is the image's repository under the registry, and the binary's name.
	Name string
	// Main is the main package, relative to the repository root.
	Main string
	// Key names the image in the chart's values (images.<Key>) and in messages.
	Key string
	// Description goes into the org.opencontainers.image.description label.
	Description string
}

// Images are Kiln's images. Adding one is one line here; an image whose main package is not in
// the checkout being built is left out (Available).
var Images = []Image{
	{Name: "kiln-manager", Main: "./cmd/kiln-manager", Key: "manager", Description: "Kiln's manager: controllers, admission webhooks and metrics"},
	{Name: "kiln-fetch", Main: "./cmd/kiln-fetch", Key: "fetch", Description: "Kiln's download step for s3://, gs:// and https:// data and models"},
	{Name: "kiln-build", Main: "./cmd/kiln-build", Key: "build", Description: "Kiln's source build step, run as a Job in the tenant's namespace"},
}

// Available returns the images whose main package exists under src.
func Available(src string) []Image {
	var out []Image
	for _, im := range Images {
		if _, err := os.Stat(filepath.Join(src, im.Main)); err == nil {
			out = append(out, im)
		}
	}
	return out
}

// DefaultPlatforms are what every image is built for.
var DefaultPlatforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// NonRoot is the user and group every image runs as: distroless's "nonroot", which the
// restricted Pod Security profile accepts.
const (
	NonRootUID = 65532
	NonRoot    = "65532:65532"
)

// CACertsFile is where Debian's ca-certificates keeps the bundle, on the build host and in the
// image alike.
const CACertsFile = "/etc/ssl/certs/ca-certificates.crt"

// SourceURL is the org.opencontainers.image.source label unless Options say otherwise.
const SourceURL = "https://github.com/kiln-dev/kiln"

// Options say how to build the images.
type Options struct {
	// Source is the repository root.
	Source string
	// Version is the release version (the tag the images are pushed under), for labels.
	Version string
	// Revision is the source's commit, for labels; "" asks git.
	Revision string
	// SourceURL is the repository's address, for labels; SourceURL when "".
	SourceURL string
	// Created is the timestamp of every file, history entry and the config: fixed, so that
	// the same source gives the same digest. Zero: SOURCE_DATE_EPOCH, else the revision's
	// commit time, else the Unix epoch.
	Created time.Time
	// Platforms to build for; DefaultPlatforms when empty.
	Platforms []v1.Platform
	// CACerts is the certificate bundle laid into the base; CACertsFile when "".
	CACerts string
	// Progress receives one line per step; nil is silent.
	Progress io.Writer
}

func (o Options) withDefaults(ctx context.Context) (Options, error) {
	if o.Source == "" {
		o.Source = "."
	}
	if o.SourceURL == "" {
		o.SourceURL = SourceURL
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Revision == "" {
		o.Revision = gitOutput(ctx, o.Source, "rev-parse", "HEAD")
	}
	if o.Created.IsZero() {
		t, err := createdTime(ctx, o.Source)
		if err != nil {
			return o, err
		}
		o.Created = t
	}
	o.Created = o.Created.UTC()
	if len(o.Platforms) == 0 {
		o.Platforms = DefaultPlatforms
	}
	if o.CACerts == "" {
		o.CACerts = CACertsFile
	}
	return o, nil
}

func (o Options) step(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// createdTime follows the reproducible-builds convention: SOURCE_DATE_EPOCH wins; a checkout
// uses its commit's time, so a rebuild of the same commit gives the same digests.
func createdTime(ctx context.Context, src string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds: %w", s, err)
		}
		return time.Unix(n, 0), nil
	}
	if s := gitOutput(ctx, src, "log", "-1", "--format=%ct"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0), nil
		}
	}
	return time.Unix(0, 0), nil
}

func gitOutput(ctx context.Context, dir string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Built is one image index, ready to push.
type Built struct {
	Image Image
	Index v1.ImageIndex
	// Sizes are the compressed sizes of each platform's image (config, manifest and layers).
	Sizes map[string]int64
}

// Build builds every image in imgs for every platform.
func Build(ctx context.Context, o Options, imgs []Image) ([]Built, error) {
	o, err := o.withDefaults(ctx)
	if err != nil {
		return nil, err
	}
	base, err := BaseLayer(o.CACerts, o.Created)
	if err != nil {
		return nil, err
	}
	var out []Built
	for _, im := range imgs {
		b, err := buildIndex(ctx, o, im, base)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func buildIndex(ctx context.Context, o Options, im Image, base v1.Layer) (Built, error) {
	labels := map[string]string{
		"org.opencontainers.image.title":       im.Name,
		"org.opencontainers.image.description": im.Description,
		"org.opencontainers.image.source":      o.SourceURL,
		"org.opencontainers.image.url":         o.SourceURL,
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     o.Created.Format(time.RFC3339),
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	b := Built{Image: im, Sizes: map[string]int64{}}
	for _, plat := range o.Platforms {
		start := time.Now()
		bin, err := compile(ctx, o.Source, im.Main, plat)
		if err != nil {
			return Built{}, err
		}
		img, err := imageOf(im, plat, base, bin, labels, o.Created)
		if err != nil {
			return Built{}, err
		}
		size, err := imageSize(img)
		if err != nil {
			return Built{}, err
		}
		b.Sizes[plat.String()] = size
		o.step("%s %s: compiled and laid out in %s, %.1f MB compressed", im.Name, plat.String(), time.Since(start).Round(time.Second), float64(size)/1e6)
		p := plat
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	b.Index = mutate.Annotations(idx, labels).(v1.ImageIndex)
	return b, nil
}

// compile cross-compiles main statically: no cgo, no absolute paths, no build id, no VCS stamp,
// so the binary depends only on the source and the Go release.
func compile(ctx context.Context, src, main string, plat v1.Platform) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "kiln-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, main)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+plat.OS, "GOARCH="+plat.Architecture, "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %s for %s: %w\n%s", main, plat.String(), err, strings.TrimSpace(stderr.String()))
	}
	return os.ReadFile(out)
}

// BinDir is where each image's binary lives.
const BinDir = "/usr/local/bin"

func imageOf(im Image, plat v1.Platform, base v1.Layer, bin []byte, labels map[string]string, created time.Time) (v1.Image, error) {
	binLayer, err := layerOf([]file{
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(BinDir, "/") + "/" + im.Name, mode: 0o755, data: bin},
	}, created)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "kiln base: CA certificates, nonroot user 65532, /tmp"}},
		mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "kiln: go build " + im.Main}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Created = v1.Time{Time: created}
	cf.Author = "Kiln"
	cf.Config.User = NonRoot
	cf.Config.Entrypoint = []string{BinDir + "/" + im.Name}
	cf.Config.Cmd = nil
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"SSL_CERT_FILE=" + CACertsFile,
		"HOME=/home/nonroot",
	}
	cf.Config.Labels = labels
	return mutate.ConfigFile(img, cf)
}

// BaseLayer is the minimal non-root base every image shares: the CA bundle, /etc/passwd and
// /etc/group with root and nonroot (65532), nonroot's home, and a world-writable /tmp. Built
// here, so it is the same layer (one blob in a registry) under every image.
func BaseLayer(caFile string, created time.Time) (v1.Layer, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the CA certificates for the base image (apt-get install ca-certificates): %w", err)
	}
	if !bytes.Contains(ca, []byte("BEGIN CERTIFICATE")) {
		return nil, fmt.Errorf("%s holds no PEM certificates", caFile)
	}
	return layerOf([]file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, dir: true, uid: NonRootUID},
		{name: "root/", mode: 0o700, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
	}, created)
}

type file struct {
	name string
	mode int64
	dir  bool
	uid  int
	data []byte
}

// layerOf writes the files, sorted, with fixed times and numeric owners, as a gzip'd OCI layer.
func layerOf(files []file, created time.Time) (v1.Layer, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: created, Format: tar.FormatPAX}
		if f.dir {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.data))
		}
		if path.Clean(f.name) == "" {
			return nil, fmt.Errorf("empty file name")
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// Pushed is where an image went.
type Pushed struct {
	Image Image
	// Tag is registry/name:tag.
	Tag string
	// Digest is registry/name@sha256:…, what manifests pin.
	Digest string
}

// Push writes each index to registry/name:tag and returns the references by digest. Loopback
// and private registries are reached over plain HTTP, others over HTTPS with the Docker
// config's credentials; insecure allows plain HTTP everywhere.
func Push(ctx context.Context, built []Built, registry, tag string, insecure bool, progress io.Writer) ([]Pushed, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	var out []Pushed
	for _, b := range built {
		ref, err := name.NewTag(strings.TrimSuffix(registry, "/")+"/"+b.Image.Name+":"+tag, opts...)
		if err != nil {
			return nil, fmt.Errorf("image reference for %s: %w", b.Image.Name, err)
		}
		if err := remote.WriteIndex(ref, b.Index, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithUserAgent("kiln-release")); err != nil {
			return nil, fmt.Errorf("pushing %s: %w", ref, err)
		}
		d, err := b.Index.Digest()
		if err != nil {
			return nil, err
		}
		p := Pushed{Image: b.Image, Tag: ref.String(), Digest: ref.Context().Digest(d.String()).String()}
		if progress != nil {
			fmt.Fprintf(progress, "pushed %s\n", p.Digest)
		}
		out = append(out, p)
	}
	return out, nil
}

// BuildAndPush builds every available image of o.Source and pushes it, saying how long the
// build took and how large each image is.
func BuildAndPush(ctx context.Context, o Options, registry, tag string, insecure bool) ([]Pushed, error) {
	src := o.Source
	if src == "" {
		src = "."
	}
	imgs := Available(src)
	if len(imgs) == 0 {
		return nil, fmt.Errorf("%s holds none of Kiln's main packages (%s, …): run from the repository root", src, Images[0].Main)
	}
	start := time.Now()
	built, err := Build(ctx, o, imgs)
	if err != nil {
		return nil, err
	}
	o.step("built %d images in %s", len(built), time.Since(start).Round(time.Second))
	return Push(ctx, built, registry, tag, insecure, o.Progress)
}
