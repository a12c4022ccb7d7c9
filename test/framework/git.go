package framework

import (
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// GitServer is a Git host for tests: bare repositories served over Git's smart
// HTTP protocol by Debian's git http-backend, behind net/http/cgi.
type GitServer struct {
	// URL is the server's base; a repository's is URL/<name>.git.
	URL  string
	root string
	work string
	t    testing.TB
}

// NewGitServer serves repositories until the test ends.
func NewGitServer(t testing.TB) *GitServer {
	t.Helper()
	backend, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git is needed to serve repositories: %v", err)
	}
	root := t.TempDir()
	srv := httptest.NewServer(&cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(backend)), "git-http-backend"),
		Root: "/",
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	})
	t.Cleanup(srv.Close)
	return &GitServer{URL: srv.URL, root: root, work: t.TempDir(), t: t}
}

// Repo creates an empty repository and returns its URL.
func (g *GitServer) Repo(name string) string {
	g.t.Helper()
	g.git("", "init", "--quiet", "--bare", filepath.Join(g.root, name+".git"))
	g.git("", "clone", "--quiet", filepath.Join(g.root, name+".git"), filepath.Join(g.work, name))
	return g.URL + "/" + name + ".git"
}

// Commit writes files (path → content) on branch, starting it from the current
// checkout when new, pushes it, and returns the commit.
func (g *GitServer) Commit(repo, branch string, files map[string]string) string {
	g.t.Helper()
	dir := filepath.Join(g.work, repo)
	g.git(dir, "checkout", "--quiet", "-B", branch)
	for path, content := range files {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	g.git(dir, "add", "--all")
	g.git(dir, "-c", "user.name=Kiln Test", "-c", "user.email=test@kiln.dev", "commit", "--quiet", "--allow-empty", "-m", "change on "+branch)
	g.git(dir, "push", "--quiet", "origin", branch)
	return strings.TrimSpace(g.git(dir, "rev-parse", "HEAD"))
}

func (g *GitServer) git(dir string, args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+g.work)
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
