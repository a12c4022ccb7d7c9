package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"kiln.dev/kiln/internal/build"
)

// InitOptions write the Dockerfile equivalent to `kubectl kiln build`.
type InitOptions struct {
	Dir   string
	Base  string
	Main  string
	Force bool

	streams genericiooptions.IOStreams
}

func newInitCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &InitOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Write a Dockerfile and .dockerignore equivalent to kubectl kiln build, to own the build",
		Long: `Write DIR/Dockerfile and DIR/.dockerignore that build, with any container builder, the image
kubectl kiln build makes: the same base, /app layout, entrypoint, environment and non-root user.
A container builder can also install dependencies (pip install -r requirements.txt, npm ci),
which kubectl kiln build cannot. Existing files are kept unless --force is given.`,
		Example: `  kubectl kiln init ./trainer --base docker.io/pytorch/pytorch@sha256:...
  docker build -t registry.example/team/trainer:v1 ./trainer`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir = args[0]
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Base, "base", "", "base image (default: python:3.12-slim, node:22-slim, scratch for Go)")
	cmd.Flags().StringVar(&o.Main, "main", "", "Go: the main package to build when there are several, e.g. ./cmd/server")
	cmd.Flags().BoolVar(&o.Force, "force", false, "overwrite an existing Dockerfile and .dockerignore")
	return cmd
}

// Run detects the project and writes both files, or neither.
func (o *InitOptions) Run(_ context.Context) error {
	p, err := build.Detect(o.Dir)
	if err != nil {
		return err
	}
	if o.Main != "" && p.Language == "go" {
		p.Main = o.Main
		p.Entrypoint = []string{build.AppDir + "/" + filepath.Base(o.Main)}
	}
	if p.Language == "go" && p.Main == "" {
		return fmt.Errorf("%s: %s", o.Dir, strings.Join(p.Notes, "; "))
	}
	dockerfile, dockerignore := build.Dockerfile(o.Dir, p, o.Base)
	files := []struct{ name, content string }{{"Dockerfile", dockerfile}, {".dockerignore", dockerignore}}
	if !o.Force {
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(o.Dir, f.name)); err == nil {
				return fmt.Errorf("%s already exists: keep it, or overwrite it with --force", filepath.Join(o.Dir, f.name))
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	fmt.Fprintf(o.streams.Out, "detected %s (%s)\n", p.Language, strings.Join(p.Evidence, ", "))
	for _, f := range files {
		path := filepath.Join(o.Dir, f.name)
		if err := os.WriteFile(path, []byte(f.content), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(o.streams.Out, "wrote %s\n", path)
	}
	return nil
}

// GenerateWorkflowOptions write a GitHub Actions workflow that builds on every push and
// commits the exported manifests for a GitOps tool to apply.
type GenerateWorkflowOptions struct {
	Image     string
	Manifest  string
	Dir       string
	Base      string
	Branch    string
	DeployDir string
	File      string
	Force     bool

	streams genericiooptions.IOStreams
}

func newGenerateWorkflowCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &GenerateWorkflowOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "generate-workflow --image REPO --manifest FILE [flags]",
		Short: "Write a GitHub Actions workflow: build on push, export plain manifests for GitOps",
		Long: `Write a GitHub Actions workflow for teams that build in CI and let a GitOps tool (Argo CD, Flux)
apply what is in Git. On every push to --branch it builds the source with kubectl kiln build,
pushes the image tagged with the commit, exports the TrainingJob or ModelServer in --manifest as
plain Kubernetes manifests running that image by digest into --deploy-dir, and commits them.
Point the GitOps tool at --deploy-dir. The workflow logs in to the registry with the secrets
REGISTRY_USERNAME and REGISTRY_PASSWORD.`,
		Example: `  kubectl kiln generate-workflow --image ghcr.io/team/iris --manifest kiln/modelserver.yaml
  kubectl kiln generate-workflow --image registry.example/team/trainer --manifest trainingjob.yaml --file -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Image, "image", "", "image repository to push to, without a tag (the commit SHA becomes the tag)")
	f.StringVar(&o.Manifest, "manifest", "", "the TrainingJob or ModelServer manifest in the repository to export")
	f.StringVar(&o.Dir, "dir", ".", "source directory to build, relative to the repository")
	f.StringVar(&o.Base, "base", "", "base image for the build; pin it by digest")
	f.StringVar(&o.Branch, "branch", "main", "branch whose pushes deploy")
	f.StringVar(&o.DeployDir, "deploy-dir", "deploy", "directory the exported manifests are committed to")
	f.StringVar(&o.File, "file", ".github/workflows/kiln.yaml", "where to write the workflow; - for standard output")
	f.BoolVar(&o.Force, "force", false, "overwrite an existing workflow file")
	return cmd
}

// Validate needs a repository without tag and a manifest.
func (o *GenerateWorkflowOptions) Validate() error {
	if o.Image == "" {
		return fmt.Errorf("--image is required: the repository to push to, e.g. ghcr.io/team/app")
	}
	if _, err := name.NewRepository(o.Image); err != nil {
		return fmt.Errorf("--image %q must be a repository without tag or digest (the commit SHA becomes the tag): %w", o.Image, err)
	}
	if o.Manifest == "" {
		return fmt.Errorf("--manifest is required: the TrainingJob or ModelServer file to export on every build")
	}
	for flag, v := range map[string]string{"--manifest": o.Manifest, "--dir": o.Dir, "--deploy-dir": o.DeployDir, "--branch": o.Branch} {
		if strings.ContainsAny(v, "\"'`$\n") {
			return fmt.Errorf("%s %q: quotes, $ and newlines are not allowed", flag, v)
		}
	}
	return nil
}

// Run writes the workflow.
func (o *GenerateWorkflowOptions) Run(_ context.Context) error {
	wf := o.workflow()
	if o.File == "-" {
		_, err := fmt.Fprint(o.streams.Out, wf)
		return err
	}
	if _, err := os.Stat(o.File); err == nil && !o.Force {
		return fmt.Errorf("%s already exists: keep it, or overwrite it with --force", o.File)
	}
	if err := os.MkdirAll(filepath.Dir(o.File), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(o.File, []byte(wf), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(o.streams.Out, "wrote %s\nadd the secrets REGISTRY_USERNAME and REGISTRY_PASSWORD to the repository, and point your GitOps tool at %s/\n", o.File, o.DeployDir)
	return nil
}

func (o *GenerateWorkflowOptions) workflow() string {
	repo, _ := name.NewRepository(o.Image)
	registry := repo.RegistryStr()
	base := ""
	if o.Base != "" {
		base = " --base " + o.Base
	}
	version := Version()
	if version == "devel" {
		version = "latest"
	}
	out := filepath.ToSlash(filepath.Join(o.DeployDir, strings.TrimSuffix(filepath.Base(o.Manifest), filepath.Ext(o.Manifest))+".yaml"))
	return fmt.Sprintf(`# Written by kubectl kiln generate-workflow: build on every push to %[1]s, then commit the
# plain Kubernetes manifests for a GitOps tool (Argo CD, Flux) watching %[2]s/.
name: kiln
on:
  push:
    branches: [%[1]s]
    # The commit this workflow makes must not start it again.
    paths-ignore: ["%[2]s/**"]
permissions:
  contents: write
concurrency:
  group: kiln-${{ github.ref }}
  cancel-in-progress: false
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-go@v5
        with:
          go-version: stable
      - name: Install kubectl-kiln
        run: go install kiln.dev/kiln/cmd/kubectl-kiln@%[3]s
      - name: Log in to %[4]s
        env:
          REGISTRY_USERNAME: ${{ secrets.REGISTRY_USERNAME }}
          REGISTRY_PASSWORD: ${{ secrets.REGISTRY_PASSWORD }}
        # kubectl kiln build reads the credentials docker login stores.
        run: echo "$REGISTRY_PASSWORD" | docker login %[4]s --username "$REGISTRY_USERNAME" --password-stdin
      - name: Build and push
        id: build
        # stdout is the pushed image's digest reference; progress goes to the log.
        run: |
          image=$(kubectl-kiln build %[5]s --image %[6]s:${{ github.sha }}%[7]s)
          echo "image=$image" >> "$GITHUB_OUTPUT"
      - name: Export manifests
        run: |
          mkdir -p %[2]s
          kubectl-kiln export -f %[8]s --set-image "${{ steps.build.outputs.image }}" > %[9]s
      - name: Commit manifests
        run: |
          git config user.name "kiln-ci"
          git config user.email "kiln-ci@users.noreply.github.com"
          git add %[2]s
          git diff --cached --quiet || git commit -m "deploy ${{ steps.build.outputs.image }}"
          git push
`, o.Branch, o.DeployDir, version, registry, o.Dir, o.Image, base, o.Manifest, out)
}
