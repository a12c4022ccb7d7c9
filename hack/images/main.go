// Command images builds Kiln's own images (internal/release) for linux/amd64 and linux/arm64 and
// pushes them to a registry, printing each image's reference by digest:
//
//	go run ./hack/images -registry REGISTRY [-tag TAG] [-o FILE]
//
// `make images REGISTRY=… [TAG=…]` runs it. -o also writes the references to FILE, one
// "name<TAB>registry/name@sha256:…" line each, which `make release` pins the manifests to.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"kiln.dev/kiln/internal/release"
)

func main() {
	registry := flag.String("registry", os.Getenv("REGISTRY"), "registry (and path) to push to, e.g. ghcr.io/kiln-dev or 127.0.0.1:5000")
	tag := flag.String("tag", "", "tag to push under (default: dev)")
	out := flag.String("o", "", "also write name<TAB>reference lines to this file")
	insecure := flag.Bool("insecure", false, "reach the registry over plain HTTP (loopback and private addresses always are)")
	platforms := flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
	flag.Parse()
	if *registry == "" {
		fmt.Fprintln(os.Stderr, "images: say where to push with -registry (make images REGISTRY=…)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *registry, *tag, *out, *platforms, *insecure); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, registry, tag, out, platforms string, insecure bool) error {
	if tag == "" {
		tag = "dev"
	}
	o := release.Options{Source: ".", Version: tag, Progress: os.Stderr}
	for _, p := range strings.Split(platforms, ",") {
		plat, err := v1.ParsePlatform(strings.TrimSpace(p))
		if err != nil {
			return fmt.Errorf("platform %q: %w", p, err)
		}
		o.Platforms = append(o.Platforms, *plat)
	}
	refs, err := release.BuildAndPush(ctx, o, registry, tag, insecure)
	if err != nil {
		return err
	}
	var lines strings.Builder
	for _, p := range refs {
		fmt.Fprintf(&lines, "%s\t%s\n", p.Image.Name, p.Digest)
	}
	fmt.Print(lines.String())
	if out != "" {
		return os.WriteFile(out, []byte(lines.String()), 0o644)
	}
	return nil
}
