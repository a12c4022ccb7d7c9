package devtools

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tinyTool is a real module built by the real Go toolchain, small enough to build in seconds.
func tinyTool(t *testing.T) (src string, tool Tool) {
	t.Helper()
	src = t.TempDir()
	dir := filepath.Join(src, "hello")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "go.mod"), "module example.com/hello\n\ngo 1.26.0\n")
	write(t, filepath.Join(dir, "main.go"), "package main\n\nfunc main() { println(\"hello\") }\n")
	return src, Tool{Name: "hello", Version: "v1", Module: "hello", Package: ".", About: "seconds"}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureBuildsCachesAndRebuildsDamagedBinaries(t *testing.T) {
	src, tool := tinyTool(t)
	var log strings.Builder
	c := &Cache{Dir: t.TempDir(), SourceDir: src, Out: &log, Tools: []Tool{tool}}
	ctx := context.Background()

	paths, err := c.Ensure(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	bin := paths["hello"]
	if !strings.Contains(log.String(), "built hello") {
		t.Fatalf("first run should build; log:\n%s", log.String())
	}
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("no executable at %s: %v", bin, err)
	}

	log.Reset()
	if again, err := c.Ensure(ctx, "hello"); err != nil || again["hello"] != bin {
		t.Fatalf("second run: %v, path %q want %q", err, again["hello"], bin)
	}
	if !strings.Contains(log.String(), "using cached hello") || strings.Contains(log.String(), "built") {
		t.Fatalf("second run should use the cache; log:\n%s", log.String())
	}

	// A truncated binary (an interrupted copy, a full disk) is rebuilt, not run.
	write(t, bin, "garbage")
	log.Reset()
	if _, err := c.Ensure(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "damaged") || !strings.Contains(log.String(), "built hello") {
		t.Fatalf("damaged binary should be rebuilt; log:\n%s", log.String())
	}

	// Changing the pinning module changes the cache entry.
	write(t, filepath.Join(src, "hello", "main.go"), "package main\n\nfunc main() { println(\"bye\") }\n")
	changed, err := c.Ensure(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if changed["hello"] == bin {
		t.Fatal("a changed pinning module must not reuse the old binary")
	}
}

func TestEnsureErrors(t *testing.T) {
	src, tool := tinyTool(t)
	broken := Tool{Name: "broken", Version: "v1", Module: "broken", Package: ".", About: "seconds"}
	if err := os.MkdirAll(filepath.Join(src, "broken"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "broken", "go.mod"), "module example.com/broken\n\ngo 1.26.0\n")
	write(t, filepath.Join(src, "broken", "main.go"), "package main\n\nfunc main() { undefined() }\n")
	c := &Cache{Dir: t.TempDir(), SourceDir: src, Tools: []Tool{tool, broken}}

	for _, tc := range []struct {
		name, tool, want string
	}{
		{"unknown tool", "kube-nothing", `unknown tool "kube-nothing" (known: hello, broken)`},
		{"build failure shows the compiler's words", "broken", "undefined: undefined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Ensure(context.Background(), tc.tool)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestFindSourceDir(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	got, err := FindSourceDir(wd)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(got) != "tools" || filepath.Base(filepath.Dir(got)) != "hack" {
		t.Fatalf("FindSourceDir(%s) = %s", wd, got)
	}
	if _, err := FindSourceDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not inside a Kiln checkout") {
		t.Fatalf("outside a checkout: %v", err)
	}
}

func TestCatalogIsBuildable(t *testing.T) {
	wd, _ := os.Getwd()
	src, err := FindSourceDir(wd)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range Catalog() {
		if _, err := os.Stat(filepath.Join(src, tool.Module, "go.mod")); err != nil {
			t.Errorf("%s: no pinning module: %v", tool.Name, err)
		}
	}
}

// A tool's environment and build tags reach its build: this one compiles only with the tag
// and without cgo, so a build that ignored either fails.
func TestEnsureAppliesEnvAndTags(t *testing.T) {
	src := t.TempDir()
	dir := filepath.Join(src, "tagged")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "go.mod"), "module example.com/tagged\n\ngo 1.26.0\n")
	write(t, filepath.Join(dir, "main.go"), "//go:build kiln_tag && !cgo\n\npackage main\n\nfunc main() {}\n")
	tool := Tool{Name: "tagged", Version: "v1", Module: "tagged", Package: ".", About: "seconds",
		Env: []string{"CGO_ENABLED=0"}, Tags: []string{"kiln_tag", "other_tag"}}
	c := &Cache{Dir: t.TempDir(), SourceDir: src, Tools: []Tool{tool}}
	paths, err := c.Ensure(context.Background(), "tagged")
	if err != nil {
		t.Fatal(err)
	}
	// Other tags are another build, cached apart.
	tool.Tags = []string{"kiln_tag"}
	c.Tools = []Tool{tool}
	again, err := c.Ensure(context.Background(), "tagged")
	if err != nil {
		t.Fatal(err)
	}
	if again["tagged"] == paths["tagged"] {
		t.Fatal("different build tags must not share a cache entry")
	}
}
