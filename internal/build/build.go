// Package build turns a source directory into an OCI image without a container runtime:
// it detects the project's language, lays the source (or, for Go, the cross-compiled binary)
// as reproducible layers on a base image, sets entrypoint, environment and working directory,
// and pushes the result. It has no Kubernetes imports, so both the command line and the
// manager's push-to-deploy receiver call it.
package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"kiln.dev/kiln/internal/source"
)

// Project is what Detect found, and why.
type Project struct {
	// Language is "python", "go" or "node".
	Language string
	// Evidence lists the files that decided it, e.g. "requirements.txt".
	Evidence []string
	// Entrypoint is the command the image runs; empty when none could be found, in which
	// case the workload must give its own command.
	Entrypoint []string
	// Notes are human explanations and warnings, e.g. for a mixed repository which
	// language won and what else was seen.
	Notes []string
	// Main is, for Go, the main package built, relative to the source directory (e.g.
	// "./cmd/server").
	Main string
}

// Options say what to build and where to push it.
type Options struct {
	// Dir is the source directory.
	Dir string
	// Base is the base image reference; "" means the language's default (DefaultBase), and
	// "scratch" means no base at all (sensible only for Go). Pin it by digest for
	// reproducible builds: a tag may move.
	Base string
	// Target is where to push, e.g. "registry.example/team/app:tag". Image ignores it.
	Target string
	// Platform is the OS/architecture to build for; default "linux/amd64".
	Platform string
	// Keychain resolves registry credentials; default authn.DefaultKeychain (the Docker
	// config file).
	Keychain authn.Keychain
	// Insecure allows a plain-HTTP registry (local registries). Loopback and private
	// addresses are always reached over plain HTTP.
	Insecure bool
	// Progress receives one line per step; nil is silent.
	Progress io.Writer
	// Main is, for Go, the main package to build (e.g. "./cmd/server"); "" picks the only
	// one there is.
	Main string
	// Timeout bounds the whole build (reading the source, compiling, pulling the base,
	// pushing); 0 leaves only ctx's deadline.
	Timeout time.Duration
}

// Result is a pushed image.
type Result struct {
	Project Project
	// Digest is the manifest digest, "sha256:...".
	Digest string
	// Reference is the pushed repository at that digest, "repo@sha256:...", which is what
	// a workload should run so that it gets exactly this image.
	Reference string
}

// AppDir is where the source (or the Go binary) lives in the image, and its working
// directory.
const AppDir = "/app"

// NonRootUser is the user set on images whose base runs as root: Kiln's pods run under the
// restricted Pod Security profile, which refuses images that would run as root.
const NonRootUser = "65532:65532"

// DefaultBase is the base image used for each language when Options.Base is "". Python's
// and Node's are given by tag for convenience and so move over time; pin your own by digest.
func DefaultBase(language string) string {
	switch language {
	case "python":
		return "docker.io/library/python:3.12-slim"
	case "node":
		return "docker.io/library/node:22-slim"
	default:
		return "scratch"
	}
}

// epoch is the timestamp every file and history entry gets, so the same source gives the
// same digest whenever it is built.
var epoch = time.Unix(0, 0).UTC()

// Image builds the image for o.Dir without pushing it. The source must stay inside
// itself (source.VerifyDir): a symlink out of it, a hard link, a device, FIFO or
// socket, or a local submodule fails the build with an error naming the path.
func Image(ctx context.Context, o Options) (v1.Image, Project, error) {
	o = o.withDefaults()
	ctx, cancel := o.deadline(ctx)
	defer cancel()
	ign, err := readIgnore(o.Dir)
	if err != nil {
		return nil, Project{}, err
	}
	p, err := Detect(o.Dir)
	if err != nil {
		return nil, Project{}, err
	}
	// What the ignore files leave out is never read, so it need not pass; go build reads
	// the module as it is, whatever the ignore files say: all of it but what the go
	// command itself never reads.
	skip := ign.skip
	if p.Language == "go" {
		if skip, err = goNeverReads(o.Dir); err != nil {
			return nil, p, err
		}
	}
	if err := source.VerifyDir(o.Dir, skip); err != nil {
		return nil, p, err
	}
	ep := "none (the workload must give its command)"
	if len(p.Entrypoint) > 0 {
		ep = strings.Join(p.Entrypoint, " ")
	}
	o.step("detected %s (%s); entrypoint %s", p.Language, strings.Join(p.Evidence, ", "), ep)
	for _, n := range p.Notes {
		o.step("note: %s", n)
	}
	plat, err := v1.ParsePlatform(o.Platform)
	if err != nil {
		return nil, p, fmt.Errorf("platform %q: %w", o.Platform, err)
	}
	base := o.Base
	if base == "" {
		base = DefaultBase(p.Language)
	}
	img, err := o.baseImage(ctx, base, *plat, &p)
	if err != nil {
		return nil, p, err
	}
	var layer v1.Layer
	switch p.Language {
	case "go":
		if o.Main != "" {
			p.Main = o.Main
			p.Entrypoint = []string{AppDir + "/" + binaryName(o.Dir, o.Main)}
		}
		if p.Main == "" {
			return nil, p, fmt.Errorf("%s: %s", o.Dir, strings.Join(p.Notes, "; "))
		}
		o.step("compiling %s for %s", p.Main, o.Platform)
		layer, err = goBinaryLayer(ctx, o.Dir, p.Main, p.Entrypoint[0], *plat, base == "scratch", layerMediaType(img))
	default:
		var files int
		layer, files, err = sourceLayer(ctx, o.Dir, ign, layerMediaType(img))
		if err == nil {
			o.step("source layer: %d files under %s", files, AppDir)
		}
	}
	if err != nil {
		return nil, p, err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: layerMediaType(img),
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "kiln build: " + p.Language + " " + AppDir, Comment: strings.Join(p.Evidence, ", ")},
	})
	if err != nil {
		return nil, p, fmt.Errorf("adding the layer: %w", err)
	}
	img, err = configure(img, p, *plat)
	if err != nil {
		return nil, p, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, p, fmt.Errorf("computing the image digest: %w", err)
	}
	o.step("image %s", d)
	return img, p, nil
}

// Build builds the image for o.Dir and pushes it to o.Target.
func Build(ctx context.Context, o Options) (Result, error) {
	o = o.withDefaults()
	ctx, cancel := o.deadline(ctx)
	defer cancel()
	if o.Target == "" {
		return Result{}, fmt.Errorf("no target image: say where to push, e.g. registry.example/team/app:tag")
	}
	ref, err := name.ParseReference(o.Target, o.nameOptions()...)
	if err != nil {
		return Result{}, fmt.Errorf("target %q is not an image reference: %w", o.Target, err)
	}
	if _, ok := ref.(name.Digest); ok {
		return Result{}, fmt.Errorf("target %q names a digest; push to a tag or a repository", o.Target)
	}
	img, p, err := Image(ctx, o)
	if err != nil {
		return Result{Project: p}, err
	}
	o.step("pushing to %s", ref.Name())
	if err := remote.Write(ref, img, o.remoteOptions(ctx)...); err != nil {
		return Result{Project: p}, registryError(ref.Context().RegistryStr(), "push to", err)
	}
	d, err := img.Digest()
	if err != nil {
		return Result{Project: p}, err
	}
	res := Result{Project: p, Digest: d.String(), Reference: ref.Context().Digest(d.String()).String()}
	o.step("pushed %s", res.Reference)
	return res, nil
}

func (o Options) withDefaults() Options {
	if o.Platform == "" {
		o.Platform = "linux/amd64"
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.Dir == "" {
		o.Dir = "."
	}
	return o
}

// deadline applies o.Timeout to ctx.
func (o Options) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.Timeout > 0 {
		return context.WithTimeout(ctx, o.Timeout)
	}
	return context.WithCancel(ctx)
}

func (o Options) step(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

func (o Options) nameOptions() []name.Option {
	if o.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (o Options) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.Keychain),
		remote.WithUserAgent("kiln-build"),
		// One retry: an unreachable registry should fail in seconds with a clear line, not
		// after a long backoff.
		remote.WithRetryBackoff(remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Steps: 2}),
	}
}

// baseImage fetches the base for the platform, or starts from nothing for "scratch".
func (o Options) baseImage(ctx context.Context, base string, plat v1.Platform, p *Project) (v1.Image, error) {
	if base == "scratch" {
		if p.Language != "go" {
			p.Notes = append(p.Notes, fmt.Sprintf("base is scratch: the image has no %s interpreter; give --base an image that has one", p.Language))
		}
		o.step("base scratch (empty)")
		return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), nil
	}
	ref, err := name.ParseReference(base, o.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("base %q is not an image reference: %w", base, err)
	}
	if _, ok := ref.(name.Digest); !ok {
		w := fmt.Sprintf("base %s is given by tag, which may move: pin it by digest (%s@sha256:...) for reproducible builds", base, ref.Context().Name())
		p.Notes = append(p.Notes, w)
		o.step("warning: %s", w)
	}
	img, err := remote.Image(ref, append(o.remoteOptions(ctx), remote.WithPlatform(plat))...)
	if err != nil {
		return nil, registryError(ref.Context().RegistryStr(), "pull the base "+base+" from", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, registryError(ref.Context().RegistryStr(), "read the base "+base+" from", err)
	}
	if cf.OS != "" && (cf.OS != plat.OS || cf.Architecture != plat.Architecture) {
		return nil, fmt.Errorf("base %s is for %s/%s, not %s: choose a base published for %s", base, cf.OS, cf.Architecture, plat, plat)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, registryError(ref.Context().RegistryStr(), "pull the base "+base+" from", err)
	}
	o.step("base %s (%s)", base, d)
	return img, nil
}

// layerMediaType keeps the new layer in the same family (OCI or Docker) as the base's
// manifest; registries and runtimes refuse some mixtures.
func layerMediaType(img v1.Image) types.MediaType {
	if mt, err := img.MediaType(); err == nil && mt == types.DockerManifestSchema2 {
		return types.DockerLayer
	}
	return types.OCILayer
}

// configure sets what the image runs: entrypoint (clearing the base's command, which would
// otherwise become its arguments), working directory, environment and a non-root user.
func configure(img v1.Image, p Project, plat v1.Platform) (v1.Image, error) {
	out, err := EditConfig(img, func(cf *v1.ConfigFile) {
		cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
		c := &cf.Config
		c.Entrypoint = p.Entrypoint
		c.Cmd = nil
		c.WorkingDir = AppDir
		c.Env = mergeEnv(c.Env, languageEnv(p.Language))
		switch c.User {
		case "", "root", "0", "0:0", "root:root":
			c.User = NonRootUser
		}
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		c.Labels["dev.kiln.build.language"] = p.Language
	})
	if err != nil {
		return nil, fmt.Errorf("writing the image config: %w", err)
	}
	return out, nil
}

// EditConfig returns img with its config file changed by edit, which works on a copy.
func EditConfig(img v1.Image, edit func(*v1.ConfigFile)) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	edit(cf)
	return mutate.ConfigFile(img, cf)
}

func languageEnv(language string) []string {
	switch language {
	case "python":
		// Unbuffered so logs appear as they are written; no .pyc files, as /app is not
		// writable by the non-root user.
		return []string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH=" + AppDir}
	case "node":
		return []string{"NODE_ENV=production"}
	}
	return nil
}

// mergeEnv overrides base variables by name and keeps their order.
func mergeEnv(base, add []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if bk, _, _ := strings.Cut(b, "="); bk == k {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// Pull fetches image for o.Platform with o's credentials, as Build fetches a base; a
// registry failure comes back as a RegistryError.
func Pull(ctx context.Context, image string, o Options) (v1.Image, error) {
	o = o.withDefaults()
	ref, err := name.ParseReference(image, o.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("%q is not an image reference: %w", image, err)
	}
	plat, err := v1.ParsePlatform(o.Platform)
	if err != nil {
		return nil, fmt.Errorf("platform %q: %w", o.Platform, err)
	}
	img, err := remote.Image(ref, append(o.remoteOptions(ctx), remote.WithPlatform(*plat))...)
	if err != nil {
		return nil, registryError(ref.Context().RegistryStr(), "pull "+image+" from", err)
	}
	return img, nil
}
