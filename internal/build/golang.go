package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/mod/modfile"
)

// goBinaryLayer cross-compiles the main package and lays the binary at binPath. The flags
// make the binary depend only on the source and the toolchain: no cgo, no absolute paths,
// no build id, no VCS stamp (which would differ between a clean and a dirty checkout of the
// same source).
func goBinaryLayer(ctx context.Context, dir, main, binPath string, plat v1.Platform, scratch bool, mt types.MediaType) (v1.Layer, error) {
	tmp, err := os.MkdirTemp("", "kiln-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "app")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, main)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+plat.OS, "GOARCH="+plat.Architecture)
	if plat.Architecture == "arm" && plat.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(plat.Variant, "v"))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("go build %s for %s/%s failed: %s", main, plat.OS, plat.Architecture, msg)
	}
	// The binary is read into memory: the layer is opened more than once (digest, then
	// upload) and the temporary directory goes away when this returns.
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	files := []entry{{name: filepath.Base(binPath), data: bin, mode: 0o755}}
	entries := withParents(strings.Trim(filepath.Dir(binPath), "/"), files)
	if scratch {
		// Programs expect a writable /tmp, which scratch lacks.
		entries = append(entries, entry{name: "tmp", mode: 0o1777})
		sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	}
	return layerOf(entries, mt)
}

// goNeverReads is what the go.mod at dir tells the go command to ignore (its ignore
// directives, such as a web front end's node_modules): those folders hold no package the
// build compiles, so their files need not pass the checkout check.
func goNeverReads(dir string) (func(rel string, isDir bool) bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return nil, err
	}
	mf, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		return nil, fmt.Errorf("go.mod: %w", err)
	}
	var rooted, named []string
	for _, ig := range mf.Ignore {
		if p, ok := strings.CutPrefix(ig.Path, "./"); ok {
			rooted = append(rooted, filepath.Clean(p))
		} else {
			named = append(named, ig.Path)
		}
	}
	return func(rel string, isDir bool) bool {
		return isDir && (slices.Contains(rooted, rel) || slices.Contains(named, filepath.Base(rel)))
	}, nil
}
