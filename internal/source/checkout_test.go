package source_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"kiln.dev/kiln/internal/source"
)

func TestVerifyDir(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		path  string // "" when the directory is fine
	}{
		{name: "plain files and inner links", setup: func(t *testing.T, dir string) {
			write(t, dir, "lib/a.py")
			link(t, dir, "lib/a.py", "a.py")
			link(t, dir, "../lib", "lib/again")
			link(t, dir, "missing", "dangling")
			write(t, dir, ".git/config")
			link(t, dir, "/etc/passwd", ".git/ignored") // .git is never built
		}},
		{name: "relative link out", setup: func(t *testing.T, dir string) {
			link(t, dir, "../../../../var/run/secrets/kubernetes.io/serviceaccount/token", "go.mod")
		}, path: "go.mod"},
		{name: "absolute link", setup: func(t *testing.T, dir string) { link(t, dir, "/etc", "etc") }, path: "etc"},
		{name: "out through a link to the top", setup: func(t *testing.T, dir string) {
			link(t, dir, ".", "top")
			link(t, dir, "top/..", "up")
		}, path: "up"},
		{name: "hard link", setup: func(t *testing.T, dir string) {
			write(t, dir, "a.txt")
			if err := os.Link(filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")); err != nil {
				t.Fatal(err)
			}
		}, path: "a.txt"},
		{name: "fifo", setup: func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, path: "pipe"},
		{name: "file submodule", setup: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, ".gitmodules"), []byte("[submodule \"s\"]\n\tpath = s\n\turl = file:///srv/s\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, path: ".gitmodules"},
		{name: "https submodule", setup: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, ".gitmodules"), []byte("[submodule \"s\"]\n\tpath = s\n\turl = https://github.com/acme/s.git\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			err := source.VerifyDir(dir, nil)
			if tc.path == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var unsafe *source.UnsafeError
			if !errors.As(err, &unsafe) || unsafe.Path != tc.path || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("error %v, want one naming %s", err, tc.path)
			}
		})
	}
}

func write(t *testing.T, dir, rel string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, dir, target, rel string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}
