package localkiln

import (
	"context"
	"fmt"
	"io"

	"kiln.dev/kiln/internal/build"
	"kiln.dev/kiln/internal/controlplane"
)

// BuildFetchImage builds cmd/kiln-fetch from the Kiln source at src into the
// local registry at registryAddr, as `kubectl kiln build` would, and returns
// it as the real node pulls it: kiln.local/kiln/fetch@sha256:…. The manager
// runs it as the download step of s3://, gs:// and https:// inputs and models.
func BuildFetchImage(ctx context.Context, src, registryAddr string, progress io.Writer) (string, error) {
	r, err := build.Build(ctx, build.Options{
		Dir: src, Main: "./cmd/kiln-fetch", Base: "scratch", Insecure: true,
		Target: registryAddr + "/kiln/fetch:dev", Progress: progress,
	})
	if err != nil {
		return "", fmt.Errorf("building the kiln-fetch image: %w", err)
	}
	return controlplane.LocalRegistryName + "/kiln/fetch@" + r.Digest, nil
}
