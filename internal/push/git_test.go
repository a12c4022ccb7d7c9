package push_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln.dev/kiln/internal/push"
	"kiln.dev/kiln/test/framework"
)

// Fetch and Head against a real Git server over smart HTTP.
func TestFetch(t *testing.T) {
	ctx := context.Background()
	g := framework.NewGitServer(t)
	repo := g.Repo("model")
	first := g.Commit("model", "main", map[string]string{"main.py": "print('one')\n", "requirements.txt": "numpy\n"})
	second := g.Commit("model", "main", map[string]string{"main.py": "print('two')\n"})
	other := g.Commit("model", "dev", map[string]string{"main.py": "print('dev')\n"})
	if first == second || second == other {
		t.Fatal("commits are not distinct")
	}

	tests := []struct {
		name, branch string
		limit        int64
		commit, file string
		err          error
		problem      string
	}{
		{name: "the branch's head", branch: "main", limit: 1 << 20, commit: second, file: "print('two')\n"},
		{name: "another branch", branch: "dev", limit: 1 << 20, commit: other, file: "print('dev')\n"},
		{name: "over the size limit", branch: "main", limit: 100, err: push.ErrTooLarge},
		{name: "no such branch", branch: "nope", limit: 1 << 20, problem: "fetching branch nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			got, err := push.Fetch(ctx, repo, tc.branch, filepath.Join(dir, "src"), filepath.Join(dir, "git"), nil, tc.limit)
			switch {
			case tc.err != nil || tc.problem != "":
				if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("error %v, want %v %q", err, tc.err, tc.problem)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if got != tc.commit {
				t.Errorf("fetched %s, want %s", got, tc.commit)
			}
			data, err := os.ReadFile(filepath.Join(dir, "src", "main.py"))
			if err != nil || string(data) != tc.file {
				t.Errorf("main.py = %q, %v; want %q", data, err, tc.file)
			}
			if _, err := os.Stat(filepath.Join(dir, "src", ".git")); !os.IsNotExist(err) {
				t.Errorf("the source directory has a .git (%v): it would be built into the image", err)
			}
			head, err := push.Head(ctx, repo, tc.branch, nil)
			if err != nil || head != tc.commit {
				t.Errorf("Head = %s, %v; want %s", head, err, tc.commit)
			}
		})
	}
}
