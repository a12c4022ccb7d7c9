package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// UnsafeError is a file a checkout or source directory may not hold: one that
// reaches outside it, or is no plain file. Path is relative to the top; the
// message names it and says why, and never holds a file's content.
type UnsafeError struct {
	Path   string
	Reason string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("%s: %s; Kiln builds only sources whose files stay inside them", e.Path, e.Reason)
}

// maxHops bounds symlink resolution, as the kernel's ELOOP does.
const maxHops = 40

// node is what a resolver needs to know of a path: whether it exists, is a
// directory, or is a symlink (and to what).
type node struct {
	exists, dir bool
	link        string
	isLink      bool
}

// escapes resolves the symlink at rel (a slash path) as the kernel would, with
// every symlink on the way looked up by lookup, and reports whether the result
// leaves the top. A dangling link that stays inside is harmless: what it names
// does not exist in the source.
func escapes(rel string, lookup func(string) node) bool {
	var stack []string // resolved components from the top
	pending := strings.Split(rel, "/")
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return true
			}
			stack = stack[:len(stack)-1]
			continue
		}
		p := path.Join(append(append([]string{}, stack...), c)...)
		n := lookup(p)
		if !n.isLink {
			stack = append(stack, c)
			continue
		}
		hops++
		if hops > maxHops {
			return true // a loop; refuse rather than guess
		}
		if strings.HasPrefix(n.link, "/") {
			return true
		}
		pending = append(strings.Split(n.link, "/"), pending...)
	}
	return false
}

// VerifyDir refuses a source directory holding what a build must not follow or
// copy: a symlink whose target resolves outside dir (absolute or relative, also
// through other symlinks), a hard link (a file with more than one name could be
// a name for a file outside), a device, FIFO or socket, and a .gitmodules
// submodule at a file:// URL or a local path. .git is skipped, as the build does,
// and so is what skip says (paths an ignore file leaves out of the build; nil
// skips nothing).
func VerifyDir(dir string, skip func(rel string, isDir bool) bool) error {
	root, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if skip != nil && skip(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return CheckEntry(root, rel, info)
	})
	if err != nil {
		return err
	}
	return VerifyModulesFile(root)
}

// CheckEntry applies VerifyDir's rule to one entry of root: rel is its slash
// path, info its Lstat.
func CheckEntry(root, rel string, info fs.FileInfo) error {
	m := info.Mode()
	switch {
	case m&fs.ModeSymlink != 0:
		if escapes(rel, diskLookup(root)) {
			return &UnsafeError{Path: rel, Reason: "a symlink whose target resolves outside the source"}
		}
	case m&fs.ModeDevice != 0 || m&fs.ModeCharDevice != 0:
		return &UnsafeError{Path: rel, Reason: "a device"}
	case m&fs.ModeNamedPipe != 0:
		return &UnsafeError{Path: rel, Reason: "a FIFO"}
	case m&fs.ModeSocket != 0:
		return &UnsafeError{Path: rel, Reason: "a socket"}
	case m.IsRegular():
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			return &UnsafeError{Path: rel, Reason: fmt.Sprintf("a hard link (%d names for one file)", st.Nlink)}
		}
	case m.IsDir():
	default:
		return &UnsafeError{Path: rel, Reason: "not a regular file, directory or symlink"}
	}
	return nil
}

// VerifyModulesFile checks root's .gitmodules, if it has one (and refuses one
// that is itself a link out).
func VerifyModulesFile(root string) error {
	p := filepath.Join(root, ".gitmodules")
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return &UnsafeError{Path: ".gitmodules", Reason: "not a regular file"}
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return verifyModules(data)
}

func diskLookup(root string) func(string) node {
	return func(rel string) node {
		p := filepath.Join(root, filepath.FromSlash(rel))
		st, err := os.Lstat(p)
		if err != nil {
			return node{}
		}
		n := node{exists: true, dir: st.IsDir()}
		if st.Mode()&fs.ModeSymlink != 0 {
			n.isLink = true
			target, _ := os.Readlink(p)
			n.link = filepath.ToSlash(target)
		}
		return n
	}
}

// VerifyTree refuses a commit's tree before anything of it is written to disk,
// by its entries' modes: Git has no hard links, devices or FIFOs, so any mode
// other than a file, an executable, a directory, a symlink or a submodule is
// refused; symlinks are resolved through the tree as VerifyDir resolves them on
// disk; submodules must not point at file:// URLs or local paths.
func VerifyTree(tree *object.Tree) error {
	entries := map[string]node{}
	var links []string
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the commit's tree: %w", err)
		}
		switch e.Mode {
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			entries[name] = node{exists: true}
		case filemode.Dir:
			entries[name] = node{exists: true, dir: true}
		case filemode.Submodule:
			entries[name] = node{exists: true, dir: true}
		case filemode.Symlink:
			target, err := readLink(tree, e)
			if err != nil {
				return fmt.Errorf("reading the symlink %s: %w", name, err)
			}
			entries[name] = node{exists: true, isLink: true, link: target}
			links = append(links, name)
		default:
			return &UnsafeError{Path: name, Reason: fmt.Sprintf("an entry of mode %s, which is no file, directory, symlink or submodule", e.Mode)}
		}
	}
	lookup := func(p string) node { return entries[p] }
	for _, l := range links {
		if escapes(l, lookup) {
			return &UnsafeError{Path: l, Reason: "a symlink whose target resolves outside the checkout"}
		}
	}
	if f, err := tree.File(".gitmodules"); err == nil {
		if entries[".gitmodules"].isLink {
			return &UnsafeError{Path: ".gitmodules", Reason: "a symlink"}
		}
		text, err := f.Contents()
		if err != nil {
			return fmt.Errorf("reading .gitmodules: %w", err)
		}
		return verifyModules([]byte(text))
	}
	return nil
}

// readLink is a symlink entry's target: its blob's content. (TreeEntryFile
// looks the blob up by hash, so it serves entries of subtrees too.)
func readLink(tree *object.Tree, e object.TreeEntry) (string, error) {
	f, err := tree.TreeEntryFile(&e)
	if err != nil {
		return "", err
	}
	if f.Size > 4096 {
		return "", errors.New("the target is longer than a path")
	}
	return f.Contents()
}

// verifyModules refuses submodules at file:// URLs or local paths: a recursive
// fetch would copy what they name from the machine that fetches.
func verifyModules(data []byte) error {
	m := config.NewModules()
	if err := m.Unmarshal(data); err != nil {
		return &UnsafeError{Path: ".gitmodules", Reason: "not a Git config file"}
	}
	for name, s := range m.Submodules {
		u := strings.TrimSpace(s.URL)
		lower := strings.ToLower(u)
		local := strings.HasPrefix(lower, "file:") || strings.HasPrefix(u, "/") || strings.HasPrefix(u, ".") ||
			strings.HasPrefix(u, "~") || (!strings.Contains(u, "://") && !strings.Contains(u, ":")) || strings.Contains(u, "\\")
		if local {
			p := s.Path
			if p == "" {
				p = name
			}
			return &UnsafeError{Path: ".gitmodules", Reason: fmt.Sprintf("submodule %q points at a local path or file:// URL", p)}
		}
	}
	return nil
}
