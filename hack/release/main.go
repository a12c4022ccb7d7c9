// Command release writes a Kiln release into dist/:
//
//	install.yaml                 config/default rendered, Kiln's images pinned by digest
//	crds.yaml                    its CustomResourceDefinitions alone (for helm upgrade)
//	kiln-VERSION.tgz             the Helm chart, its values pinned by digest
//	kubectl-kiln_OS_ARCH.tar.gz  the plugin with LICENSE (hack/krew.sh), and kiln.yaml, the krew manifest
//	images.txt                   name<TAB>registry/name@sha256:… of each image
//	checksums.txt                sha256sum of every file above
//
// The images are built and pushed to -registry first (as `make images` does), unless -images
// names a file of references from an earlier push. `make release REGISTRY=… TAG=… BASE_URL=…`
// runs it.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"kiln.dev/kiln/internal/devtools"
	"kiln.dev/kiln/internal/release"
)

func main() {
	registry := flag.String("registry", os.Getenv("REGISTRY"), "registry (and path) the images are pushed to")
	tag := flag.String("tag", "", "the release version, e.g. v0.1.0 (the images' tag)")
	baseURL := flag.String("base-url", "", "where the kubectl-kiln archives will be downloaded from, for the krew manifest")
	images := flag.String("images", "", "file of name<TAB>reference lines from `go run ./hack/images -o`: pin these instead of building")
	insecure := flag.Bool("insecure", false, "reach the registry over plain HTTP")
	dist := flag.String("o", "dist", "folder to write into")
	flag.Parse()
	if *tag == "" || (*registry == "" && *images == "") {
		fmt.Fprintln(os.Stderr, "release: needs -tag and -registry (make release REGISTRY=… TAG=v0.1.0 BASE_URL=…)")
		os.Exit(2)
	}
	if *baseURL == "" {
		*baseURL = release.SourceURL + "/releases/download/" + *tag
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *registry, *tag, *baseURL, *images, *dist, *insecure); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, registry, tag, baseURL, imagesFile, dist string, insecure bool) error {
	start := time.Now()
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return err
	}
	refs := map[string]string{} // by Image.Key
	var lines strings.Builder
	if imagesFile != "" {
		b, err := os.ReadFile(imagesFile)
		if err != nil {
			return err
		}
		lines.Write(b)
	} else {
		pushed, err := release.BuildAndPush(ctx, release.Options{Source: ".", Version: tag, Progress: os.Stderr}, registry, tag, insecure)
		if err != nil {
			return err
		}
		for _, p := range pushed {
			fmt.Fprintf(&lines, "%s\t%s\n", p.Image.Name, p.Digest)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(lines.String()))
	for sc.Scan() {
		name, ref, ok := strings.Cut(strings.TrimSpace(sc.Text()), "\t")
		if !ok {
			continue
		}
		for _, im := range release.Images {
			if im.Name == name {
				refs[im.Key] = ref
			}
		}
	}
	if refs["manager"] == "" || refs["fetch"] == "" {
		return fmt.Errorf("no reference for kiln-manager and kiln-fetch among the images:\n%s", lines.String())
	}
	if err := os.WriteFile(filepath.Join(dist, "images.txt"), []byte(lines.String()), 0o644); err != nil {
		return err
	}

	manifests, err := release.Kustomize(".")
	if err != nil {
		return err
	}
	manifests = release.Pin(manifests, refs)
	if err := os.WriteFile(filepath.Join(dist, "install.yaml"), manifests, 0o644); err != nil {
		return err
	}
	crds, err := release.CRDsOnly(manifests)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dist, "crds.yaml"), crds, 0o644); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote dist/install.yaml and dist/crds.yaml")

	src, err := filepath.Abs(filepath.Join("hack", "tools"))
	if err != nil {
		return err
	}
	tools, err := (&devtools.Cache{SourceDir: src, Out: os.Stderr}).Ensure(ctx, "helm")
	if err != nil {
		return err
	}
	pkg, err := release.PackageChart(ctx, release.ChartOptions{Root: ".", Version: tag, Refs: refs, Helm: tools["helm"], Dest: dist})
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote", pkg)

	cmd := exec.CommandContext(ctx, "hack/krew.sh", tag, baseURL)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("hack/krew.sh: %w", err)
	}
	if err := checksums(dist); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "release %s written to %s/ in %s\n", tag, dist, time.Since(start).Round(time.Second))
	fmt.Print(lines.String())
	return nil
}

// checksums writes checksums.txt in sha256sum's format, for `sha256sum -c`.
func checksums(dist string) error {
	entries, err := os.ReadDir(dist)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != "checksums.txt" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out strings.Builder
	for _, n := range names {
		f, err := os.Open(filepath.Join(dist, n))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&out, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), n)
	}
	return os.WriteFile(filepath.Join(dist, "checksums.txt"), []byte(out.String()), 0o644)
}
