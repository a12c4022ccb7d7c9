// Package sourcebuild is cmd/kiln-build: the program a source-build Job runs in
// the tenant's namespace, as the tenant. It checks the repository URL again
// (the manager checked it at delivery), fetches exactly the pushed commit with
// go-git, refuses a checkout that reaches outside itself, builds it with
// internal/build, pushes it, and writes the pushed digest, and nothing else, to
// the termination log. Credentials come from Secret volumes. Its errors go to its
// own stderr, the tenant's log; its exit code says which stage failed
// (render.BuildExit*), which is all the manager reports.
package sourcebuild

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/google/go-containerregistry/pkg/authn"

	"kiln.dev/kiln/internal/build"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/source"
)

// Options are kiln-build's flags.
type Options struct {
	Repository, Branch, Commit string
	Image, Base                string
	WorkDir                    string
	GitSecretDir, DockerConfig string
	AllowedHosts, DeniedCIDRs  string
	Insecure                   bool
	Timeout                    time.Duration
	MaxRepoBytes               int64
	TerminationLog             string
	// Resolver looks the repository's host up (tests); nil is the system's.
	Resolver source.Resolver
}

// Run is kiln-build with args (without the program name); it returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := Options{}
	fs := flag.NewFlagSet("kiln-build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Repository, "repository", "", "Git URL to fetch (https:// or ssh://)")
	fs.StringVar(&o.Branch, "branch", "main", "branch that was pushed")
	fs.StringVar(&o.Commit, "commit", "", "the pushed commit; the build fails unless the branch still points at it")
	fs.StringVar(&o.Image, "image", "", "where to push: repository:tag")
	fs.StringVar(&o.Base, "base", "", "base image (default per language)")
	fs.StringVar(&o.WorkDir, "work-dir", "/work", "writable directory for the checkout and the toolchain's caches")
	fs.StringVar(&o.GitSecretDir, "git-secret-dir", "", "the Git Secret's volume: username and password, or ssh-privatekey and known_hosts; optional ca.crt")
	fs.StringVar(&o.DockerConfig, "docker-config", "", "directory with the registry Secret's config.json")
	fs.StringVar(&o.AllowedHosts, "allowed-hosts", "", "comma-separated hosts exempt from the address checks")
	fs.StringVar(&o.DeniedCIDRs, "denied-cidrs", strings.Join(source.DefaultDeniedCIDRs, ","), "comma-separated ranges the repository host may not resolve into")
	fs.BoolVar(&o.Insecure, "insecure-registry", false, "push to a plain-HTTP registry")
	fs.DurationVar(&o.Timeout, "timeout", 20*time.Minute, "deadline over fetch, build and push")
	fs.Int64Var(&o.MaxRepoBytes, "max-repo-bytes", 256<<20, "bound on what the fetch writes")
	fs.StringVar(&o.TerminationLog, "termination-log", render.BuildOutput, "file the pushed digest is written to")
	if err := fs.Parse(args); err != nil {
		return render.BuildExitUsage
	}
	return o.Run(ctx, stdout, stderr)
}

// exitError is an error with the exit code of its stage.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func fail(code int, err error) error { return &exitError{code, err} }

// Run builds and pushes; it returns the exit code, having said why on stderr.
func (o Options) Run(ctx context.Context, stdout, stderr io.Writer) int {
	digest, err := o.run(ctx, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "kiln-build:", err)
		var e *exitError
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return render.BuildExitDeadline
		case errors.As(err, &e):
			return e.code
		}
		return render.BuildExitFailed
	}
	if err := os.WriteFile(o.TerminationLog, []byte(digest), 0o644); err != nil {
		fmt.Fprintln(stderr, "kiln-build: writing the digest:", err)
		return render.BuildExitFailed
	}
	return 0
}

func (o Options) run(ctx context.Context, progress io.Writer) (string, error) {
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	if o.Repository == "" || o.Commit == "" || o.Image == "" {
		return "", fail(render.BuildExitUsage, errors.New("--repository, --commit and --image are required"))
	}
	u, err := source.ParseRepositoryURL(o.Repository)
	if err != nil {
		return "", fail(render.BuildExitURLRefused, err)
	}
	denied, err := source.ParseCIDRs(splitList(o.DeniedCIDRs))
	if err != nil {
		return "", fail(render.BuildExitUsage, err)
	}
	policy := source.Policy{AllowedHosts: splitList(o.AllowedHosts), DeniedCIDRs: denied, Resolver: o.Resolver}
	// Checked again here, before any connection: the manager checked at delivery,
	// but DNS may answer differently now.
	if err := policy.Check(ctx, u); err != nil {
		return "", fail(render.BuildExitURLRefused, err)
	}
	installGuardedTransport(policy)
	auth, ca, err := o.gitAuth(u)
	if err != nil {
		return "", fail(render.BuildExitUsage, err)
	}
	var kc authn.Keychain = keychain{}
	if o.DockerConfig != "" {
		raw, err := os.ReadFile(filepath.Join(o.DockerConfig, "config.json"))
		if err != nil {
			return "", fail(render.BuildExitUsage, fmt.Errorf("reading the registry Secret: %w", err))
		}
		if kc, err = keychainFrom(raw); err != nil {
			return "", fail(render.BuildExitUsage, err)
		}
	}
	src, gitDir := filepath.Join(o.WorkDir, "src"), filepath.Join(o.WorkDir, "git")
	for _, d := range []string{src, gitDir, filepath.Join(o.WorkDir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fail(render.BuildExitUsage, err)
		}
	}
	fmt.Fprintf(progress, "fetching %s of %s\n", short(o.Commit), u)
	commit, err := source.Fetch(ctx, source.FetchOptions{URL: u, Branch: o.Branch, Commit: o.Commit, Dir: src, GitDir: gitDir,
		Auth: auth, CABundle: ca, MaxBytes: o.MaxRepoBytes})
	var unsafe *source.UnsafeError
	switch {
	case errors.As(err, &unsafe):
		return "", fail(render.BuildExitUnsafe, err)
	case errors.Is(err, source.ErrSuperseded):
		return "", fail(render.BuildExitSuperseded, err)
	case errors.Is(err, source.ErrTooLarge):
		return "", fail(render.BuildExitTooLarge, err)
	case err != nil && ctx.Err() != nil:
		return "", err
	case err != nil:
		return "", fail(render.BuildExitFetch, err)
	}
	fmt.Fprintf(progress, "checked out %s\n", commit)
	res, err := build.Build(ctx, build.Options{Dir: src, Base: o.Base, Target: o.Image, Keychain: kc, Insecure: o.Insecure, Progress: progress})
	var reg *build.RegistryError
	switch {
	case errors.As(err, &unsafe):
		return "", fail(render.BuildExitUnsafe, err)
	case err != nil && ctx.Err() != nil:
		return "", err
	case errors.As(err, &reg) && reg.Op == "push to":
		return "", fail(render.BuildExitPush, err)
	case err != nil:
		return "", fail(render.BuildExitBuild, err)
	}
	return res.Digest, nil
}

// gitAuth reads the Git Secret's volume: basic auth (username, password), or SSH
// (ssh-privatekey, with the host's key pinned by known_hosts), and ca.crt.
func (o Options) gitAuth(u source.RepositoryURL) (transport.AuthMethod, []byte, error) {
	read := func(key string) []byte {
		if o.GitSecretDir == "" {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(o.GitSecretDir, key))
		return b
	}
	ca := read(source.KeyCABundle)
	if u.Scheme == "ssh" {
		known := filepath.Join(o.GitSecretDir, source.KeyKnownHosts)
		if o.GitSecretDir == "" || len(read(source.KeyKnownHosts)) == 0 {
			return nil, nil, fmt.Errorf("ssh:// needs the host's key pinned: add %q to the Git Secret (push.kiln.dev/git-secret)", source.KeyKnownHosts)
		}
		key := read(source.KeySSHKey)
		if len(key) == 0 {
			return nil, nil, fmt.Errorf("ssh:// needs a key: add %q to the Git Secret", source.KeySSHKey)
		}
		user := u.User
		if user == "" {
			user = "git"
		}
		auth, err := gitssh.NewPublicKeys(user, key, "")
		if err != nil {
			return nil, nil, fmt.Errorf("the Git Secret's %q is not a private key", source.KeySSHKey)
		}
		cb, err := gitssh.NewKnownHostsCallback(known)
		if err != nil {
			return nil, nil, fmt.Errorf("the Git Secret's %q does not parse", source.KeyKnownHosts)
		}
		auth.HostKeyCallback = cb
		return auth, ca, nil
	}
	user, pass := read(source.KeyUsername), read(source.KeyPassword)
	if len(user) == 0 && len(pass) == 0 {
		return nil, ca, nil
	}
	return &githttp.BasicAuth{Username: strings.TrimSpace(string(user)), Password: strings.TrimSpace(string(pass))}, ca, nil
}

// installGuardedTransport makes go-git's https dial only what policy allows, at
// connect time (DNS rebinding, redirects). go-git keeps its transports in a
// process-wide table; kiln-build is a one-shot process with one policy.
func installGuardedTransport(policy source.Policy) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = policy.DialContext
	client.InstallProtocol("https", githttp.NewClient(&http.Client{Transport: t}))
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func short(c string) string { return c[:min(12, len(c))] }
