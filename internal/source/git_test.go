package source_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln.dev/kiln/internal/source"
	"kiln.dev/kiln/test/framework"
)

// Fetch against a real Git server over smart HTTPS.
func TestFetch(t *testing.T) {
	ctx := context.Background()
	g := framework.NewTLSGitServer(t)
	repo := g.Repo("model")
	first := g.Commit("model", "main", map[string]string{"main.py": "print('one')\n", "requirements.txt": "numpy\n"})
	second := g.Commit("model", "main", map[string]string{"main.py": "print('two')\n"})
	other := g.Commit("model", "dev", map[string]string{"main.py": "print('dev')\n"})
	if first == second || second == other {
		t.Fatal("commits are not distinct")
	}
	u, err := source.ParseRepositoryURL(repo)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, branch, commit string
		limit                int64
		file                 string
		err                  error
		problem              string
	}{
		{name: "the branch's head", branch: "main", commit: second, limit: 1 << 20, file: "print('two')\n"},
		{name: "any head", branch: "dev", limit: 1 << 20, file: "print('dev')\n"},
		{name: "an older commit", branch: "main", commit: first, limit: 1 << 20, err: source.ErrSuperseded},
		{name: "over the size limit", branch: "main", limit: 100, err: source.ErrTooLarge},
		{name: "no such branch", branch: "nope", limit: 1 << 20, problem: "fetching branch nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			got, err := source.Fetch(ctx, source.FetchOptions{URL: u, Branch: tc.branch, Commit: tc.commit,
				Dir: filepath.Join(dir, "src"), GitDir: filepath.Join(dir, "git"), CABundle: g.CA, MaxBytes: tc.limit})
			switch {
			case tc.err != nil || tc.problem != "":
				if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("error %v, want %v %q", err, tc.err, tc.problem)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if tc.commit != "" && got != tc.commit {
				t.Errorf("fetched %s, want %s", got, tc.commit)
			}
			data, err := os.ReadFile(filepath.Join(dir, "src", "main.py"))
			if err != nil || string(data) != tc.file {
				t.Errorf("main.py = %q, %v; want %q", data, err, tc.file)
			}
			if _, err := os.Stat(filepath.Join(dir, "src", ".git")); !os.IsNotExist(err) {
				t.Errorf("the source directory has a .git (%v): it would be built into the image", err)
			}
		})
	}
}

// A commit whose tree escapes is refused before any of it is on disk, with an
// error naming the path and holding nothing of what it points at.
func TestFetchRefusesEscapingTrees(t *testing.T) {
	ctx := context.Background()
	g := framework.NewTLSGitServer(t)
	tests := []struct {
		name  string
		files map[string]string
		links map[string]string
		path  string
	}{
		{name: "relative symlink out", files: map[string]string{"main.py": "x\n"},
			links: map[string]string{"go.mod": "../../../../var/run/secrets/kubernetes.io/serviceaccount/token"}, path: "go.mod"},
		{name: "absolute symlink", files: map[string]string{"main.py": "x\n"}, links: map[string]string{"data/etc": "/etc"}, path: "data/etc"},
		{name: "out through another link", files: map[string]string{"main.py": "x\n"},
			links: map[string]string{"top": ".", "sub/up": "../top/.."}, path: "sub/up"},
		{name: "file:// submodule", files: map[string]string{"main.py": "x\n",
			".gitmodules": "[submodule \"secrets\"]\n\tpath = secrets\n\turl = file:///var/run/secrets\n"}, path: ".gitmodules"},
		{name: "local path submodule", files: map[string]string{"main.py": "x\n",
			".gitmodules": "[submodule \"up\"]\n\tpath = up\n\turl = ../../other\n"}, path: ".gitmodules"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "r" + string(rune('a'+i))
			repo := g.Repo(name)
			commit := g.CommitLinks(name, "main", tc.files, tc.links)
			u, err := source.ParseRepositoryURL(repo)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			_, err = source.Fetch(ctx, source.FetchOptions{URL: u, Branch: "main", Commit: commit,
				Dir: filepath.Join(dir, "src"), GitDir: filepath.Join(dir, "git"), CABundle: g.CA, MaxBytes: 1 << 20})
			var unsafe *source.UnsafeError
			if !errors.As(err, &unsafe) || unsafe.Path != tc.path || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("error %v, want one naming %s", err, tc.path)
			}
			entries, _ := os.ReadDir(filepath.Join(dir, "src"))
			for _, e := range entries {
				if e.Name() != ".git" { // go-git's pointer to the Git directory
					t.Errorf("the refused commit was checked out: %s is there", e.Name())
				}
			}
		})
	}
	// Links that stay inside are fine.
	repo := g.Repo("fine")
	commit := g.CommitLinks("fine", "main", map[string]string{"lib/a.py": "x\n", "main.py": "y\n"},
		map[string]string{"a.py": "lib/a.py", "lib/self": "../lib", "dangling": "nowhere/inside"})
	u, _ := source.ParseRepositoryURL(repo)
	dir := t.TempDir()
	if _, err := source.Fetch(ctx, source.FetchOptions{URL: u, Branch: "main", Commit: commit,
		Dir: filepath.Join(dir, "src"), GitDir: filepath.Join(dir, "git"), CABundle: g.CA, MaxBytes: 1 << 20}); err != nil {
		t.Fatalf("links inside the checkout: %v", err)
	}
}
