// Command kiln-fetch is the init step that downloads a TrainingJob's data input
// or a ModelServer's model: kiln-fetch URI DIR, with credentials in the
// environment (see package fetch). Build it into an image with
// `kubectl kiln build . --main ./cmd/kiln-fetch --image REF` and give it to the
// manager with --fetch-image.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// Mozilla's roots, used only where the image has no CA certificates of its
	// own (a scratch image, as kubectl kiln build makes by default).
	_ "golang.org/x/crypto/x509roots/fallback"

	"kiln.dev/kiln/internal/fetch"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: kiln-fetch URI DIR   (s3://bucket/key, gs://bucket/prefix/, https://host/file[#sha256=HEX])")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := fetch.Fetch(ctx, os.Args[1], os.Args[2], os.Getenv, fetch.Options{Progress: os.Stdout}); err != nil {
		fmt.Fprintln(os.Stderr, "kiln-fetch:", err)
		os.Exit(1)
	}
}
