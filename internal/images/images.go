// Package images builds the container images the local Kiln's examples run on: Debian root
// filesystems made by debootstrap (Python with scikit-learn, Python with PyTorch) turned into
// OCI images with reproducible layers, cached by content hash, with a program's source added
// as a layer of its own and pushed to the local registry. Nothing is pulled from an image
// registry; the packages come from Debian's mirror.
package images

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"kiln.dev/kiln/internal/build"
)

// BuilderVersion is part of every cache key: change it when the way a base is made changes,
// so that caches from before are not taken for the new kind.
const BuilderVersion = "1"

// DefaultMirror is Debian's mirror network.
const DefaultMirror = "http://deb.debian.org/debian"

// Base is a Debian root filesystem with some packages, as an image.
type Base struct {
	// Name is the image's repository under kiln/, e.g. python-sklearn.
	Name string
	// Suite is the Debian release, e.g. bookworm.
	Suite string
	// Packages are installed besides debootstrap's minbase variant.
	Packages []string
	// About is how long a cold build takes on two cores, for the progress line.
	About string
}

// The bases of the bundled examples.
var (
	PythonSklearn = Base{Name: "python-sklearn", Suite: "bookworm", Packages: []string{"python3", "python3-sklearn"}, About: "about 1-2 minutes"}
	PythonTorch   = Base{Name: "python-torch", Suite: "bookworm", Packages: []string{"python3", "python3-torch"}, About: "about 3-4 minutes"}
)

// Key is the base's content hash: the suite, the sorted package list and the builder version.
func (b Base) Key() string {
	pkgs := slices.Clone(b.Packages)
	slices.Sort(pkgs)
	sum := sha256.Sum256([]byte(strings.Join([]string{BuilderVersion, b.Suite, strings.Join(slices.Compact(pkgs), ",")}, "\n")))
	return hex.EncodeToString(sum[:])[:16]
}

// Builder makes images and keeps bases in a cache folder.
type Builder struct {
	// Dir holds one OCI layout per base; DefaultDir() when empty.
	Dir string
	// Mirror is the Debian mirror; DefaultMirror when empty.
	Mirror string
	// Debootstrap is the debootstrap command; found on PATH when empty.
	Debootstrap string
	// Out receives progress lines; nil discards them.
	Out io.Writer
	// ProgressEvery is how often a long step says it is still working; 15s when zero.
	ProgressEvery time.Duration

	mu sync.Mutex // one debootstrap at a time: two at once only share the two cores
}

// DefaultDir is where bases are cached unless KILN_IMAGE_CACHE says otherwise.
func DefaultDir() (string, error) {
	if d := os.Getenv("KILN_IMAGE_CACHE"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "kiln", "images"), nil
}

func (b *Builder) dir() (string, error) {
	if b.Dir != "" {
		return b.Dir, nil
	}
	return DefaultDir()
}

func (b *Builder) printf(format string, args ...any) {
	if b.Out != nil {
		fmt.Fprintf(b.Out, format+"\n", args...)
	}
}

// CachePath is the OCI layout folder the base is (or will be) cached in.
func (b *Builder) CachePath(base Base) (string, error) {
	dir, err := b.dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, base.Name+"-"+base.Key()), nil
}

// Base returns the base image, from the cache or built with debootstrap (as root).
func (b *Builder) Base(ctx context.Context, base Base) (v1.Image, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cache, err := b.CachePath(base)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cache), 0o755); err != nil {
		return nil, err
	}
	// Another process building the same base (a test beside `make dev`) is waited for, so the
	// base is built once, not twice at half the speed.
	unlock, err := lockFile(cache+".lock", func() { b.printf("base image %s: waiting for another build of it", base.Name) })
	if err != nil {
		return nil, err
	}
	defer unlock()
	if img, err := build.LoadLayout(cache); err == nil {
		b.printf("base image %s: cached (%s)", base.Name, cache)
		return nonRoot(img)
	}
	start := time.Now()
	b.printf("base image %s: building with debootstrap (%s %s), %s the first time", base.Name, base.Suite, strings.Join(base.Packages, " "), base.About)
	work, err := os.MkdirTemp(filepath.Dir(cache), ".build-"+base.Name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	rootfs := filepath.Join(work, "rootfs")
	if err := b.debootstrap(ctx, base, rootfs); err != nil {
		return nil, err
	}
	if err := b.compilePython(ctx, rootfs); err != nil {
		return nil, err
	}
	b.printf("base image %s: writing the layer", base.Name)
	layerFile := filepath.Join(work, "layer.tar")
	if err := writeTarFile(layerFile, rootfs, TarOptions{Skip: skipInRootfs}); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromFile(layerFile, tarball.WithCompressionLevel(gzip.BestSpeed), tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := baseImage(layer, base)
	if err != nil {
		return nil, err
	}
	// Written beside the cache and renamed into place, so an interrupted build leaves no
	// half-written cache entry behind.
	staged := filepath.Join(work, "oci")
	if err := build.WriteLayout(staged, img); err != nil {
		return nil, err
	}
	if err := os.Rename(staged, cache); err != nil {
		// A builder without the lock (an older Kiln) got there first: its image is as good.
		if img, lerr := build.LoadLayout(cache); lerr == nil {
			return nonRoot(img)
		}
		return nil, err
	}
	img, err = build.LoadLayout(cache)
	if err != nil {
		return nil, err
	}
	size, _ := dirSize(cache)
	b.printf("base image %s: built in %s, %d MB compressed (%s)", base.Name, time.Since(start).Round(time.Second), size>>20, cache)
	return nonRoot(img)
}

// skipInRootfs leaves out what a container runtime provides or a build only needs once:
// mounted file systems, the package downloads and lists, logs of the build.
func skipInRootfs(rel string, dir bool) bool {
	for _, p := range []string{"proc/", "sys/", "dev/", "run/", "tmp/", "var/cache/apt/", "var/lib/apt/lists/", "var/log/"} {
		if strings.HasPrefix(rel, p) {
			return true
		}
	}
	return false
}

// debootstrap makes the root filesystem, saying every ProgressEvery what it is doing.
func (b *Builder) debootstrap(ctx context.Context, base Base, rootfs string) error {
	bin := b.Debootstrap
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("debootstrap"); err != nil {
			return fmt.Errorf("debootstrap is needed to build the %s image (apt-get install debootstrap): %w", base.Name, err)
		}
	}
	mirror := b.Mirror
	if mirror == "" {
		mirror = DefaultMirror
	}
	args := []string{"--variant=minbase", "--include=" + strings.Join(base.Packages, ","), base.Suite, rootfs, mirror}
	return b.run(ctx, "debootstrap", exec.CommandContext(ctx, bin, args...))
}

// compilePython rewrites the Python byte code as unchecked-hash .pyc files: the layer's fixed
// mtimes no longer match those recorded in Debian's timestamp-based .pyc files, and Python
// would otherwise compile every module again in each container that imports it.
func (b *Builder) compilePython(ctx context.Context, rootfs string) error {
	if _, err := os.Stat(filepath.Join(rootfs, "usr/bin/python3")); err != nil {
		return nil
	}
	matches, _ := filepath.Glob(filepath.Join(rootfs, "usr/lib/python3*"))
	var dirs []string
	for _, m := range matches {
		dirs = append(dirs, "/"+strings.TrimPrefix(m, rootfs+"/"))
	}
	if len(dirs) == 0 {
		return nil
	}
	args := append([]string{rootfs, "/usr/bin/python3", "-m", "compileall", "-q", "-f", "-j", "2", "--invalidation-mode", "unchecked-hash"}, dirs...)
	if err := b.run(ctx, "compiling Python byte code", exec.CommandContext(ctx, "chroot", args...)); err != nil {
		if ctx.Err() != nil {
			return err
		}
		// A module that does not compile (test data written for Python 2, say) keeps its
		// old byte code, or none; the rest is compiled.
		b.printf("  some Python files did not compile (kept as they were): %v", firstLine(err))
	}
	return nil
}

// run runs a long build step, relaying its last line every ProgressEvery and its output
// when it fails.
func (b *Builder) run(ctx context.Context, step string, cmd *exec.Cmd) error {
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var (
		mu   sync.Mutex
		last string
		tail []string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			mu.Lock()
			last = sc.Text()
			if tail = append(tail, last); len(tail) > 20 {
				tail = tail[1:]
			}
			mu.Unlock()
		}
	}()
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("%s: %w", step, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait(); pw.Close() }()
	every := b.ProgressEvery
	if every == 0 {
		every = 15 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case err := <-waited:
			<-done
			if err != nil {
				return fmt.Errorf("%s failed: %w\n%s", step, err, strings.Join(tail, "\n"))
			}
			return nil
		case <-tick.C:
			mu.Lock()
			l := last
			mu.Unlock()
			b.printf("  %s: %s — %s", step, time.Since(start).Round(time.Second), strings.TrimSpace(l))
		}
	}
}

// nonRoot sets a base's user to 65532 when it is read, not when it is cached, so bases
// cached before Kiln's pods ran as non-root need no new debootstrap. Kiln's pods run with
// runAsNonRoot under the restricted Pod Security profile, and the kubelet refuses an image
// whose user is root. Files stay root's, readable by all; programs write to Kiln's volumes
// (/kiln/...), which the pod's fsGroup, the same 65532, owns.
func nonRoot(img v1.Image) (v1.Image, error) {
	return build.EditConfig(img, func(cf *v1.ConfigFile) { cf.Config.User = build.NonRootUser })
}

func baseImage(layer v1.Layer, base Base) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer, History: v1.History{
		Created:   v1.Time{Time: Epoch},
		CreatedBy: fmt.Sprintf("debootstrap --variant=minbase --include=%s %s", strings.Join(base.Packages, ","), base.Suite),
	}})
	if err != nil {
		return nil, err
	}
	return build.EditConfig(img, func(cf *v1.ConfigFile) {
		cf.Architecture, cf.OS = "amd64", "linux"
		cf.Created = v1.Time{Time: Epoch}
		cf.Config.Env = []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"LANG=C.UTF-8",
			// Logs reach `kubectl logs` (and Kiln's metrics reader) as they are printed.
			"PYTHONUNBUFFERED=1",
		}
		cf.Config.Cmd = []string{"python3"}
		cf.Config.Labels = map[string]string{"dev.kiln.base": base.Name + "-" + base.Key()}
	})
}

// AddDir returns img with the folder src added under dest as one more layer, owned by root
// with normalised modes, and dest as the working directory. Files whose name starts with a
// dot, and Python caches, are left out.
func AddDir(img v1.Image, src, dest string) (v1.Image, error) {
	f, err := os.CreateTemp("", "kiln-layer-*.tar")
	if err != nil {
		return nil, err
	}
	name := f.Name()
	f.Close()
	skip := func(rel string, _ bool) bool {
		base := path.Base(rel)
		return strings.HasPrefix(base, ".") || base == "__pycache__"
	}
	if err := writeTarFile(name, src, TarOptions{Prefix: dest, Skip: skip, Normalize: true}); err != nil {
		os.Remove(name)
		return nil, err
	}
	// The layer is read back when it is pushed; the data lives in memory until then, so the
	// temporary file can go now.
	data, err := os.ReadFile(name)
	os.Remove(name)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer, History: v1.History{
		Created: v1.Time{Time: Epoch}, CreatedBy: "kiln: add " + filepath.Base(src) + " to " + dest,
	}})
	if err != nil {
		return nil, err
	}
	return build.EditConfig(img, func(cf *v1.ConfigFile) { cf.Config.WorkingDir = dest })
}

// Push writes img to ref (a registry over plain HTTP, as the local one is) and returns the
// reference by digest, which never names another image later.
func Push(ctx context.Context, img v1.Image, ref string) (string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return r.Context().Digest(d.String()).String(), nil
}

func writeTarFile(file, dir string, o TarOptions) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := WriteTar(w, dir, o); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// lockFile takes an exclusive lock on file, calling waiting first if another process holds it.
func lockFile(file string, waiting func()) (unlock func(), err error) {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		waiting()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", file, err)
		}
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if info, err := d.Info(); err == nil && d.Type().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n, err
}
