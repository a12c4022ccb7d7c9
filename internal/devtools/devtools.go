// Package devtools builds the Kubernetes components Kiln's tests and local control plane run
// (kube-apiserver, etcd, kwok, …) from pinned Go modules, and caches the binaries by version so
// that only the first run pays for the build. Nothing is downloaded but Go modules.
package devtools

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Tool is one binary built from a pinning module under hack/tools.
type Tool struct {
	// Name is the binary's name.
	Name string
	// Version is what the pinning module builds, for messages and the cache path.
	Version string
	// Module is the folder under hack/tools whose go.mod pins the build.
	Module string
	// Package is the main package to build.
	Package string
	// About is how long a cold build takes on two cores, so a first run can say what to expect.
	About string
	// Env is extra environment for the build (e.g. CGO_ENABLED=0 for a static binary that goes
	// into an image); tools of one module share it.
	Env []string
	// Tags are build tags; tools of one module share them.
	Tags []string
}

const kubeVersion = "v1.37.2"

// helmVersion is what hack/tools/helm pins; the binary says it in `helm version`.
const helmVersion = "v4.3.2"

// kubeLDFlags make the components report their real version; built from modules they would say
// v0.0.0-master and fail version-skew checks.
const kubeLDFlags = "-X k8s.io/component-base/version.gitVersion=" + kubeVersion +
	" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"

// Catalog lists every tool Kiln knows how to build.
func Catalog() []Tool {
	kube := func(name, about string) Tool {
		return Tool{Name: name, Version: kubeVersion, Module: "kubernetes", Package: "k8s.io/kubernetes/cmd/" + name, About: about}
	}
	// The storage drivers left out need C libraries; the node uses overlayfs.
	containerd := func(name string) Tool {
		return Tool{Name: name, Version: "v2.2.9", Module: "containerd", Package: "github.com/containerd/containerd/v2/cmd/" + name,
			About: "about 1.5 minutes", Env: []string{"CGO_ENABLED=0"}, Tags: []string{"no_btrfs", "no_devmapper", "no_zfs"}}
	}
	return []Tool{
		kube("kube-apiserver", "about 5 minutes"),
		kube("kube-controller-manager", "about 3 minutes"),
		kube("kube-scheduler", "about 1 minute"),
		kube("kubectl", "about 1 minute"),
		kube("kubelet", "about 2 minutes"),
		kube("kube-proxy", "about 1 minute"),
		{Name: "etcd", Version: "v3.6.16", Module: "etcd", Package: ".", About: "about 1 minute"},
		{Name: "kwok", Version: "v0.8.0", Module: "kwok", Package: "sigs.k8s.io/kwok/cmd/kwok", About: "about 1.5 minutes"},
		containerd("containerd"), containerd("containerd-shim-runc-v2"), containerd("ctr"),
		// Static, so the binary alone makes the DNS image of a real local node.
		{Name: "coredns", Version: "v1.15.0", Module: "coredns", Package: "github.com/coredns/coredns", About: "about 2.5 minutes", Env: []string{"CGO_ENABLED=0"}},
		// The sandbox image of a real node, from a program of our own (hack/tools/pause).
		{Name: "kiln-pause", Version: "v1", Module: "pause", Package: ".", About: "seconds", Env: []string{"CGO_ENABLED=0"}},
		{Name: "controller-gen", Version: "v0.23.0", Module: "controller-gen", Package: "sigs.k8s.io/controller-tools/cmd/controller-gen", About: "under a minute"},
		// Its own module: Helm's k8s.io dependencies are not the Kubernetes components'.
		{Name: "helm", Version: helmVersion, Module: "helm", Package: "helm.sh/helm/v4/cmd/helm", About: "about 1.5 minutes", Env: []string{"CGO_ENABLED=0"}},
	}
}

// ControlPlaneTools are what a full local control plane needs.
var ControlPlaneTools = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"}

// NodeTools are what a real local node adds to a control plane.
var NodeTools = []string{"kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "coredns", "kiln-pause"}

// Cache builds tools on demand and keeps them under Dir.
type Cache struct {
	// Dir holds one folder per tool build; DefaultDir() when empty.
	Dir string
	// SourceDir is the hack/tools folder of a Kiln checkout.
	SourceDir string
	// Out receives progress lines; nil discards them.
	Out io.Writer
	// Tools replaces Catalog(), for tests.
	Tools []Tool
}

// DefaultDir is where tools are cached unless KILN_TOOLS_CACHE says otherwise.
func DefaultDir() (string, error) {
	if d := os.Getenv("KILN_TOOLS_CACHE"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for tool builds (set KILN_TOOLS_CACHE): %w", err)
	}
	return filepath.Join(base, "kiln", "tools"), nil
}

// FindSourceDir returns the hack/tools folder of the Kiln checkout that holds dir, or of
// KILN_SOURCE_DIR when set.
func FindSourceDir(dir string) (string, error) {
	if d := os.Getenv("KILN_SOURCE_DIR"); d != "" {
		dir = d
	}
	for d := dir; ; d = filepath.Dir(d) {
		candidate := filepath.Join(d, "hack", "tools")
		if _, err := os.Stat(filepath.Join(candidate, "kubernetes", "go.mod")); err == nil {
			return candidate, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s is not inside a Kiln checkout: the Kubernetes components are built from the pinned modules in its hack/tools folder (run from the repository or set KILN_SOURCE_DIR)", dir)
		}
	}
}

// Ensure returns the path of each named tool, building those that are missing or damaged.
func (c *Cache) Ensure(ctx context.Context, names ...string) (map[string]string, error) {
	out := c.Out
	if out == nil {
		out = io.Discard
	}
	if c.Dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return nil, err
		}
		c.Dir = d
	}
	catalog := c.Tools
	if catalog == nil {
		catalog = Catalog()
	}
	tools, err := lookup(catalog, names)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating tool cache: %w", err)
	}
	unlock, err := lockDir(ctx, c.Dir, out)
	if err != nil {
		return nil, err
	}
	defer unlock()

	goVersion, err := goEnv(ctx, "GOVERSION")
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	missing := map[string][]Tool{} // by module, so one `go build` links them all
	for _, t := range tools {
		key, err := c.key(t, goVersion)
		if err != nil {
			return nil, err
		}
		p := filepath.Join(c.Dir, fmt.Sprintf("%s-%s-%s", t.Name, t.Version, key), t.Name)
		paths[t.Name] = p
		switch err := verify(p); {
		case err == nil:
			fmt.Fprintf(out, "using cached %s %s (%s)\n", t.Name, t.Version, p)
		case errors.Is(err, os.ErrNotExist):
			missing[t.Module] = append(missing[t.Module], t)
		default:
			fmt.Fprintf(out, "cached %s is damaged (%v); rebuilding it\n", t.Name, err)
			missing[t.Module] = append(missing[t.Module], t)
		}
	}
	modules := make([]string, 0, len(missing))
	for m := range missing {
		modules = append(modules, m)
	}
	sort.Strings(modules)
	for _, m := range modules {
		if err := c.build(ctx, out, missing[m], paths); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

func lookup(catalog []Tool, names []string) ([]Tool, error) {
	byName := map[string]Tool{}
	var known []string
	for _, t := range catalog {
		byName[t.Name] = t
		known = append(known, t.Name)
	}
	var tools []Tool
	for _, n := range names {
		t, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("unknown tool %q (known: %s)", n, strings.Join(known, ", "))
		}
		tools = append(tools, t)
	}
	return tools, nil
}

// key identifies a build: the pinning module's files, the package, flags and the Go release.
func (c *Cache) key(t Tool, goVersion string) (string, error) {
	if c.SourceDir == "" {
		return "", errors.New("tool source folder not set (see FindSourceDir)")
	}
	dir := filepath.Join(c.SourceDir, t.Module)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("reading pinning module for %s: %w", t.Name, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", t.Package, ldflags(t), goVersion)
	// Only tools with an environment or tags hash them, so the keys of the others (and their
	// cached builds) stay as they were before tools could have either.
	if len(t.Env) > 0 || len(t.Tags) > 0 {
		fmt.Fprintf(h, "%q\n%q\n", t.Env, t.Tags)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

func ldflags(t Tool) string {
	switch t.Module {
	case "kubernetes":
		return kubeLDFlags
	case "helm":
		// Built from its module, Helm would call itself v4.3, and charts that require a Helm
		// version could not tell.
		return "-X helm.sh/helm/v4/internal/version.version=" + helmVersion
	}
	return ""
}

func (c *Cache) build(ctx context.Context, out io.Writer, tools []Tool, paths map[string]string) error {
	var names, pkgs, abouts []string
	for _, t := range tools {
		names = append(names, t.Name)
		pkgs = append(pkgs, t.Package)
		abouts = append(abouts, t.Name+" "+t.About)
	}
	fmt.Fprintf(out, "building %s from Go modules (first time only; %s on 2 cores)\n", strings.Join(names, ", "), strings.Join(abouts, ", "))
	tmp, err := os.MkdirTemp(c.Dir, ".build-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	args := []string{"build", "-o", tmp + string(os.PathSeparator)}
	if f := ldflags(tools[0]); f != "" {
		args = append(args, "-ldflags", f)
	}
	if len(tools[0].Tags) > 0 {
		args = append(args, "-tags", strings.Join(tools[0].Tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkgs...)...)
	cmd.Dir = filepath.Join(c.SourceDir, tools[0].Module)
	cmd.Env = append(os.Environ(), tools[0].Env...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				fmt.Fprintf(out, "  still building %s (%s)\n", strings.Join(names, ", "), time.Since(start).Round(time.Second))
			}
		}
	}()
	err = cmd.Run()
	close(done)
	if err != nil {
		return fmt.Errorf("building %s: %w\n%s", strings.Join(names, ", "), err, tail(stderr.String(), 40))
	}
	for _, t := range tools {
		built := filepath.Join(tmp, t.Name)
		if t.Package == "." {
			built = filepath.Join(tmp, t.Module)
		}
		if err := install(built, paths[t.Name]); err != nil {
			return fmt.Errorf("caching %s: %w", t.Name, err)
		}
	}
	fmt.Fprintf(out, "built %s in %s\n", strings.Join(names, ", "), time.Since(start).Round(time.Second))
	return nil
}

// install moves a fresh binary into its cache folder with a checksum beside it, so a truncated
// or overwritten binary is noticed and rebuilt rather than run.
func install(src, dst string) error {
	sum, err := fileSum(src)
	if err != nil {
		return err
	}
	dir := filepath.Dir(dst)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	return os.WriteFile(dst+".sha256", []byte(sum+"\n"), 0o644)
}

func verify(path string) error {
	want, err := os.ReadFile(path + ".sha256")
	if err != nil {
		return err
	}
	got, err := fileSum(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("binary missing beside its checksum")
		}
		return err
	}
	if strings.TrimSpace(string(want)) != got {
		return errors.New("checksum mismatch")
	}
	return nil
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// lockDir serialises builds between processes (parallel test packages, a developer's shell).
func lockDir(ctx context.Context, dir string, out io.Writer) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking tool cache: %w", err)
		}
		if !said {
			fmt.Fprintf(out, "waiting for another process that is building tools in %s\n", dir)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func goEnv(ctx context.Context, name string) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("the Go toolchain is needed to build the Kubernetes components (install Go 1.26 or later and put it on PATH): %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
