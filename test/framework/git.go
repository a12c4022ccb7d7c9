package framework

import (
	"encoding/pem"
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
	URL string
	// CA is the PEM certificate a TLS server's certificate is (NewTLSGitServer).
	CA   []byte
	root string
	work string
	t    testing.TB
}

// NewGitServer serves repositories over plain HTTP until the test ends.
func NewGitServer(t testing.TB) *GitServer { return newGitServer(t, false) }

// NewTLSGitServer serves repositories over HTTPS (at 127.0.0.1, with the
// certificate in CA) until the test ends: Kiln's builds fetch only https:// and ssh://.
func NewTLSGitServer(t testing.TB) *GitServer { return newGitServer(t, true) }

func newGitServer(t testing.TB, tls bool) *GitServer {
	t.Helper()
	backend, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git is needed to serve repositories: %v", err)
	}
	root := t.TempDir()
	srv := httptest.NewUnstartedServer(&cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(backend)), "git-http-backend"),
		Root: "/",
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	})
	g := &GitServer{root: root, work: t.TempDir(), t: t}
	if tls {
		srv.StartTLS()
		g.CA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
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
	return g.CommitLinks(repo, branch, files, nil)
}

// CommitLinks is Commit with symlinks too (path → target, written as they are:
// tests of checkouts that must not escape commit links that do).
func (g *GitServer) CommitLinks(repo, branch string, files, links map[string]string) string {
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
	for path, target := range links {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			g.t.Fatal(err)
		}
		_ = os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
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
