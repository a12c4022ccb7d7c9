package images

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// LocalRegistry is the name the local Kiln's container runtime knows its registry by.
const LocalRegistry = "kiln.local"

// Example is the image of a bundled example: the files of its folder under /app on a base.
type Example struct {
	// Repo is the image's repository, e.g. kiln/digits.
	Repo string
	// Dir is the example's folder under examples/.
	Dir string
	// Base is what the programs run on.
	Base Base
}

// Examples are the bundled examples that run on a real node.
var Examples = []Example{
	{Repo: "kiln/digits", Dir: "digits", Base: PythonSklearn},
	{Repo: "kiln/ddp", Dir: "ddp", Base: PythonTorch},
}

// Ref is how the example's YAML names its image.
func (e Example) Ref() string { return LocalRegistry + "/" + e.Repo + ":latest" }

// Example builds the example's image from the folder examplesDir/e.Dir on its (cached) base.
func (b *Builder) Example(ctx context.Context, e Example, examplesDir string) (v1.Image, error) {
	base, err := b.Base(ctx, e.Base)
	if err != nil {
		return nil, err
	}
	return AddDir(base, filepath.Join(examplesDir, e.Dir), "/app")
}

// Publish builds the example's image and pushes it to registry (host:port, plain HTTP), which
// the node's container runtime knows as LocalRegistry. It returns the image's reference by
// digest under LocalRegistry, for pods to run.
//
// The base goes too, as kiln/<base name>:<base key> (and :latest), so that other images can be
// built on it (`kubectl kiln build --base kiln.local/kiln/python-sklearn:latest`); its layer is
// the example image's first, so this costs one manifest.
func (b *Builder) Publish(ctx context.Context, e Example, examplesDir, registry string) (string, error) {
	base, err := b.Base(ctx, e.Base)
	if err != nil {
		return "", err
	}
	for _, tag := range []string{e.Base.Key(), "latest"} {
		if _, err := Push(ctx, base, registry+"/kiln/"+e.Base.Name+":"+tag); err != nil {
			return "", err
		}
	}
	img, err := AddDir(base, filepath.Join(examplesDir, e.Dir), "/app")
	if err != nil {
		return "", err
	}
	pushed, err := Push(ctx, img, registry+"/"+e.Repo+":latest")
	if err != nil {
		return "", err
	}
	_, digest, ok := strings.Cut(pushed, "@")
	if !ok {
		return "", fmt.Errorf("pushed %s has no digest", pushed)
	}
	return LocalRegistry + "/" + e.Repo + "@" + digest, nil
}
