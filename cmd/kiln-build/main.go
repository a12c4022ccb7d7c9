// Command kiln-build is the source build Kiln runs as a Job in the tenant's
// namespace for push-to-deploy (see package sourcebuild and docs/build.md):
// fetch the pushed commit, check it, build it with internal/build, push it, and
// write the digest to /dev/termination-log. Build it into an image with
// `kubectl kiln build . --main ./cmd/kiln-build --base IMAGE-WITH-GO --image REF`
// and give it to the manager with --push-build-image.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	// Mozilla's roots, used only where the image has no CA certificates of its own.
	_ "golang.org/x/crypto/x509roots/fallback"

	"kiln.dev/kiln/internal/sourcebuild"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := sourcebuild.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
