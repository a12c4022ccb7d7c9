// Command kiln-fetch is the init step that downloads a TrainingJob's data input
// or a ModelServer's model: kiln-fetch URI DIR, with credentials in the
// environment (see package fetch). Build it into an image with
// `kubectl kiln build` and give it to the manager with --fetch-image.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

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
