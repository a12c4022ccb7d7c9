package sourcebuild_test

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/sourcebuild"
	"kiln.dev/kiln/test/framework"
)

// kiln-build as the build Job runs it: against a real Git server over HTTPS and
// an in-process registry, with the Git Secret's volume as a directory.
func TestRun(t *testing.T) {
	g := framework.NewTLSGitServer(t)
	host := strings.TrimPrefix(g.URL, "https://")
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	regHost := strings.TrimPrefix(reg.URL, "http://")
	secretDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(secretDir, "ca.crt"), g.CA, 0o400); err != nil {
		t.Fatal(err)
	}
	good := g.Repo("good")
	goodCommit := g.Commit("good", "main", map[string]string{"requirements.txt": "x\n", "main.py": "print(1)\n"})
	bad := g.Repo("bad")
	badCommit := g.CommitLinks("bad", "main", map[string]string{"requirements.txt": "x\n", "main.py": "print(1)\n"},
		map[string]string{"config.py": "../../../../../../etc/passwd"})

	tests := []struct {
		name   string
		args   []string
		code   int
		digest bool
		says   string
	}{
		{name: "builds and pushes", args: []string{"--repository=" + good, "--commit=" + goodCommit, "--allowed-hosts=" + host}, digest: true, says: "pushed"},
		{name: "an escaping symlink", args: []string{"--repository=" + bad, "--commit=" + badCommit, "--allowed-hosts=" + host}, code: render.BuildExitUnsafe, says: "config.py"},
		{name: "a loopback host not allowed", args: []string{"--repository=" + good, "--commit=" + goodCommit}, code: render.BuildExitURLRefused, says: "loopback"},
		{name: "a file URL", args: []string{"--repository=file:///etc", "--commit=" + goodCommit}, code: render.BuildExitURLRefused, says: "file://"},
		{name: "ssh without known_hosts", args: []string{"--repository=ssh://git@" + host + "/good.git", "--commit=" + goodCommit, "--allowed-hosts=" + host}, code: render.BuildExitUsage, says: "known_hosts"},
		{name: "a commit the branch moved past", args: []string{"--repository=" + good, "--commit=" + strings.Repeat("0", 40), "--allowed-hosts=" + host}, code: render.BuildExitSuperseded, says: "not 0000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			termination := filepath.Join(t.TempDir(), "termination-log")
			args := append([]string{"--image=" + regHost + "/team/app:1", "--base=scratch", "--work-dir=" + work,
				"--git-secret-dir=" + secretDir, "--termination-log=" + termination}, tc.args...)
			var out bytes.Buffer
			code := sourcebuild.Run(context.Background(), args, &out, &out)
			if code != tc.code || !strings.Contains(out.String(), tc.says) {
				t.Fatalf("exit %d, want %d, with %q in the log:\n%s", code, tc.code, tc.says, out.String())
			}
			msg, err := os.ReadFile(termination)
			if !tc.digest {
				if err == nil {
					t.Errorf("a failed build wrote a termination message: %q", msg)
				}
				return
			}
			if _, err := v1.NewHash(string(msg)); err != nil {
				t.Errorf("termination message %q is not a digest", msg)
			}
		})
	}
}
