package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"kiln.dev/kiln/internal/build"
	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/localkiln"
	"kiln.dev/kiln/internal/render"
)

// BuildOptions build an image from source and push it (or write it to a tarball).
type BuildOptions struct {
	Dir      string
	Image    string
	ImageTar string
	source   sourceBuild
	streams  genericiooptions.IOStreams
}

func newBuildCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &BuildOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "build DIR --image REF [flags]",
		Short: "Build an image from source without Docker and push it; prints the digest reference",
		Long: `Build an OCI image from a source directory without a container runtime. Kiln detects the
project (Go: go.mod and a main package; Python: requirements.txt or pyproject.toml; Node:
package.json) and says what it found. Go is cross-compiled and the binary laid on scratch (or
--base); Python and Node source is laid under /app on a base image that must already carry the
interpreter and the dependencies, since nothing is installed without a container to run pip or
npm in (for that, see kubectl kiln init). .dockerignore and .kilnignore are honoured; .git never
goes in. The same source gives the same digest.

Progress goes to standard error; standard output gets the pushed image's digest reference, to
use as the image of a TrainingJob or ModelServer.`,
		Example: `  # Build the training code on a pinned PyTorch image, push it, keep the reference
  IMAGE=$(kubectl kiln build ./trainer --image registry.example/team/trainer:v1 \
      --base docker.io/pytorch/pytorch@sha256:...)

  # A Go server on scratch, for arm64, to a local plain-HTTP registry
  kubectl kiln build ./server --image localhost:5000/server:dev --platform linux/arm64

  # No registry at all: write the image to a tarball (docker load, ctr images import)
  kubectl kiln build ./server --image server:dev --image-tar server.tar

  # For the local Kiln (kubectl kiln dev up): kiln.local is its registry, base images included
  kubectl kiln build ./trainer --image kiln.local/me/trainer:v1 --base kiln.local/kiln/python-sklearn:latest`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir = args[0]
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Image, "image", "", "where to push, e.g. registry.example/team/app:tag, or kiln.local/NAME:TAG for the local Kiln (with --image-tar, the name inside the tarball)")
	cmd.Flags().StringVar(&o.ImageTar, "image-tar", "", "write the image to this OCI tarball instead of pushing it")
	o.source.addFlags(cmd.Flags(), false)
	return cmd
}

// Validate needs a target image.
func (o *BuildOptions) Validate() error {
	if o.Image == "" {
		return fmt.Errorf("--image is required: where to push, e.g. registry.example/team/app:tag")
	}
	return nil
}

// Run builds, then pushes or writes the tarball.
func (o *BuildOptions) Run(ctx context.Context) error {
	o.source.Dir = o.Dir
	if o.ImageTar == "" {
		ref, err := o.source.run(ctx, o.Image, true, o.streams.ErrOut)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(o.streams.Out, ref)
		return err
	}
	opts, err := o.source.options(o.Image, o.streams.ErrOut)
	if err != nil {
		return err
	}
	img, _, err := build.Image(ctx, opts)
	if err != nil {
		return err
	}
	if err := build.WriteTarball(img, o.Image, o.ImageTar); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(o.streams.ErrOut, "wrote %s to %s\n", o.Image, o.ImageTar)
	_, err = fmt.Fprintln(o.streams.Out, d)
	return err
}

// sourceBuild is the build part of `build`, `train --build` and `serve --build`.
type sourceBuild struct {
	Dir      string
	Base     string
	Platform string
	Main     string
	Insecure bool
}

// addFlags adds the build flags; withDir adds --build DIR for the verbs that create objects.
func (s *sourceBuild) addFlags(f *pflag.FlagSet, withDir bool) {
	if withDir {
		f.StringVar(&s.Dir, "build", "", "build this source directory first (as kubectl kiln build does), push it to --image and run it by digest")
	}
	f.StringVar(&s.Base, "base", "", "base image for the build; pin it by digest (default: python:3.12-slim, node:22-slim, scratch for Go)")
	f.StringVar(&s.Platform, "platform", "linux/amd64", "OS/architecture to build for")
	f.StringVar(&s.Main, "main", "", "Go: the main package to build when there are several, e.g. ./cmd/server")
	f.BoolVar(&s.Insecure, "insecure-registry", false, "allow a registry over plain HTTP (loopback and private addresses always are)")
}

// options are the build's; a base on kiln.local is pulled from the local Kiln's registry.
func (s *sourceBuild) options(target string, progress io.Writer) (build.Options, error) {
	base, _, err := onLocalKiln(s.Base, "--base")
	if err != nil {
		return build.Options{}, err
	}
	return build.Options{Dir: s.Dir, Base: base, Target: target, Platform: s.Platform, Main: s.Main, Insecure: s.Insecure, Progress: progress}, nil
}

// localRegistry is the running local Kiln's registry address on this machine; tests point
// it at a registry of their own.
var localRegistry = func() (string, error) { return localkiln.RegistryAddress(localkiln.DefaultDir()) }

// onLocalKiln points ref at the local Kiln's registry on this machine when it names
// kiln.local, the name the local Kiln's node pulls by, and returns that registry's address
// ("" for any other ref). flag names where ref came from, for the error.
func onLocalKiln(ref, flag string) (resolved, registry string, err error) {
	if !strings.HasPrefix(ref, controlplane.LocalRegistryName+"/") {
		return ref, "", nil
	}
	if registry, err = localRegistry(); err != nil {
		return "", "", fmt.Errorf("%s %s: %w", flag, ref, err)
	}
	resolved, _ = controlplane.ResolveLocalImage(ref, registry)
	return resolved, registry, nil
}

// run builds s.Dir for target and returns the digest reference; with push false it only
// builds, which is enough to know the digest (for --dry-run). A target on kiln.local is
// pushed to the local Kiln's registry and named kiln.local in the reference, as pods pull it.
func (s *sourceBuild) run(ctx context.Context, target string, push bool, progress io.Writer) (string, error) {
	opts, err := s.options(target, progress)
	if err != nil {
		return "", err
	}
	if !push {
		img, _, err := build.Image(ctx, opts)
		if err != nil {
			return "", err
		}
		ref, err := name.ParseReference(target)
		if err != nil {
			return "", fmt.Errorf("--image %q: %w", target, err)
		}
		d, err := img.Digest()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(progress, "not pushed (dry run)\n")
		return ref.Context().Digest(d.String()).String(), nil
	}
	var registry string
	if opts.Target, registry, err = onLocalKiln(target, "--image"); err != nil {
		return "", err
	}
	res, err := build.Build(ctx, opts)
	if err != nil {
		return "", err
	}
	if registry != "" {
		return controlplane.LocalRegistryName + strings.TrimPrefix(res.Reference, registry), nil
	}
	return res.Reference, nil
}

// writeImageTar pulls image from its registry and writes it to path as an OCI tarball.
func writeImageTar(ctx context.Context, image, path string, w io.Writer) error {
	img, err := build.Pull(ctx, image, build.Options{})
	if err != nil {
		return err
	}
	if err := build.WriteTarball(img, image, path); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s to %s\n", image, path)
	return nil
}

// firstWorkloadImage is the image of the first container of the first Deployment or Job:
// the server or trainer, as the renderers put the stable version first.
func firstWorkloadImage(objs []render.Object) string {
	for _, obj := range objs {
		var spec *corev1.PodSpec
		switch o := obj.(type) {
		case *appsv1.Deployment:
			spec = &o.Spec.Template.Spec
		case *batchv1.Job:
			spec = &o.Spec.Template.Spec
		}
		if spec != nil && len(spec.Containers) > 0 {
			return spec.Containers[0].Image
		}
	}
	return ""
}

// validate checks --build against the verb's other flags: the built image goes to --image,
// and a manifest given with -f already names its image.
func (s *sourceBuild) validate(file, image string) error {
	if s.Dir == "" {
		return nil
	}
	if image == "" && file == "" {
		return fmt.Errorf("--build needs --image: where to push the built image, e.g. registry.example/team/app:tag")
	}
	if file != "" {
		return fmt.Errorf("--build takes the image from --image; with -f, build first with kubectl kiln build and put its digest reference in the file")
	}
	return nil
}
