package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln.dev/kiln/internal/source"
)

// The hand-written matcher this replaced backtracked: 8 "**" took 10 s, 10 over
// 50 s. Docker's matcher compiles a pattern to a regular expression, so a
// pathological .dockerignore against a deep tree builds well inside a second,
// here under a one-second deadline over the whole build.
func TestPathologicalDockerignoreBuildsQuickly(t *testing.T) {
	dir := t.TempDir()
	deep := dir
	for i := range 30 {
		deep = filepath.Join(deep, "d"+string(rune('a'+i%26)))
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(deep, "x.txt"), filepath.Join(dir, "main.py"), filepath.Join(dir, "requirements.txt")} {
		if err := os.WriteFile(f, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pattern := strings.Repeat("**/", 10) + "nomatch"
	if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(pattern+"\n!"+pattern+"2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := Image(ctx, Options{Dir: dir, Base: "scratch"})
	if err != nil {
		t.Fatalf("after %s: %v", time.Since(start), err)
	}
	t.Logf("built in %s", time.Since(start))
}

// The deadline holds over the whole build: an expired one stops it.
func TestBuildHonoursTheDeadline(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"main.py", "requirements.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := Image(context.Background(), Options{Dir: dir, Base: "scratch", Timeout: time.Nanosecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline's", err)
	}
}

// kubectl kiln build and kiln-build refuse a source that reaches outside itself,
// naming the path; what an ignore file leaves out is not read, so it may.
func TestBuildRefusesEscapingSources(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string) error
		path  string
	}{
		{name: "go.mod linked to the token", setup: func(dir string) error {
			return os.Symlink("../../../../var/run/secrets/kubernetes.io/serviceaccount/token", filepath.Join(dir, "go.mod"))
		}, path: "go.mod"},
		{name: "hard link", setup: func(dir string) error { return os.Link(filepath.Join(dir, "main.py"), filepath.Join(dir, "copy.py")) }, path: "copy.py"},
		{name: ".dockerignore linked out", setup: func(dir string) error {
			return os.Symlink("/etc/passwd", filepath.Join(dir, ".dockerignore"))
		}, path: ".dockerignore"},
		{name: "ignored venv", setup: func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, ".venv", "bin"), 0o755); err != nil {
				return err
			}
			if err := os.Symlink("/usr/bin/python3", filepath.Join(dir, ".venv", "bin", "python")); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(".venv\n"), 0o644)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"main.py", "requirements.txt"} {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.setup(dir); err != nil {
				t.Fatal(err)
			}
			_, _, err := Image(context.Background(), Options{Dir: dir, Base: "scratch"})
			if tc.path == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var unsafe *source.UnsafeError
			if !errors.As(err, &unsafe) || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("error %v, want one naming %s", err, tc.path)
			}
		})
	}
}

// What a go.mod's ignore directives name holds no package the build compiles, so it need
// not pass the checkout check; everything else of the module still must.
func TestGoNeverReadsWhatGoModIgnores(t *testing.T) {
	dir := t.TempDir()
	mod := "module example.com/m\n\ngo 1.26\n\nignore ./web/node_modules\nignore vendor-cache\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	skip, err := goNeverReads(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rel  string
		dir  bool
		want bool
	}{
		{"web/node_modules", true, true},
		{"web", true, false},
		{"node_modules", true, false},
		{"a/b/vendor-cache", true, true},
		{"web/node_modules", false, false}, // a file of that name is still read
		{"cmd/server", true, false},
	} {
		if got := skip(tc.rel, tc.dir); got != tc.want {
			t.Errorf("skip(%q, dir=%v) = %v, want %v", tc.rel, tc.dir, got, tc.want)
		}
	}
}
