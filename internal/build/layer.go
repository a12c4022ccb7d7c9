package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"kiln.dev/kiln/internal/source"
)

// IgnoreFiles are read, in this order, for patterns of files to leave out of the image, with
// .dockerignore's syntax. .git is always left out.
var IgnoreFiles = []string{".dockerignore", ".kilnignore"}

// entry is one file of a layer: where it goes in the image and where it comes from.
type entry struct {
	name string // slash path inside the image, without leading slash
	src  string // file on disk; "" for a directory
	mode int64
	link string // symlink target
	data []byte // content when not read from src
}

// sourceLayer lays the files of dir under /app.
func sourceLayer(ctx context.Context, dir string, ign *ignore, mt types.MediaType) (v1.Layer, int, error) {
	files, err := collect(ctx, dir, ign)
	if err != nil {
		return nil, 0, err
	}
	entries := withParents(strings.TrimPrefix(AppDir, "/"), files)
	l, err := layerOf(entries, mt)
	return l, len(files), err
}

// collect walks dir and returns the files the ignore patterns keep, relative to dir.
func collect(ctx context.Context, dir string, ign *ignore) ([]entry, error) {
	var out []entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("the build's deadline passed while reading the source: %w", err)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() && (d.Name() == ".git" || (ign.excludes(rel) && !ign.mayInclude(rel))) {
			return filepath.SkipDir
		}
		if ign.excludes(rel) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// Checked again as it is read: the source may have changed since VerifyDir.
		if err := source.CheckEntry(dir, rel, info); err != nil {
			return err
		}
		switch {
		case d.IsDir():
			out = append(out, entry{name: rel, mode: 0o755})
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, entry{name: rel, link: target, mode: 0o777})
		case info.Mode().IsRegular():
			// Anyone may read; executables stay executable. Owner and times are fixed
			// when the tar is written.
			mode := int64(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			out = append(out, entry{name: rel, src: p, mode: mode})
		}
		return nil
	})
	if err != nil {
		var unsafe *source.UnsafeError
		if errors.As(err, &unsafe) {
			return nil, err
		}
		return nil, fmt.Errorf("reading the source: %w", err)
	}
	return out, nil
}

// withParents puts entries under prefix and adds every directory above them, so the tar
// is complete and needs nothing from the base.
func withParents(prefix string, files []entry) []entry {
	seen := map[string]bool{}
	var out []entry
	addDir := func(d string) {
		for p := d; p != "." && p != "/" && p != ""; p = path.Dir(p) {
			if seen[p] {
				return
			}
			seen[p] = true
			out = append(out, entry{name: p, mode: 0o755})
		}
	}
	addDir(prefix)
	for _, f := range files {
		f.name = path.Join(prefix, f.name)
		if f.src == "" && f.link == "" && f.data == nil {
			addDir(f.name)
			continue
		}
		addDir(path.Dir(f.name))
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// layerOf streams a tar of the entries, sorted and with fixed owner and times, so that the
// same files always give the same digest.
func layerOf(entries []entry, mt types.MediaType) (v1.Layer, error) {
	opener := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTar(pw, entries)) }()
		return pr, nil
	}
	l, err := tarball.LayerFromOpener(opener, tarball.WithMediaType(mt))
	if err != nil {
		return nil, fmt.Errorf("building the layer: %w", err)
	}
	return l, nil
}

func writeTar(w io.Writer, entries []entry) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	tw := tar.NewWriter(bw)
	for _, e := range entries {
		if err := writeEntry(tw, e); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func writeEntry(tw *tar.Writer, e entry) error {
	h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX}
	var src io.Reader
	switch {
	case e.link != "":
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
	case e.data != nil:
		h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		src = bytes.NewReader(e.data)
	case e.src != "":
		f, err := os.Open(e.src)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		h.Typeflag, h.Size = tar.TypeReg, st.Size()
		src = f
	default:
		h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if src == nil {
		return nil
	}
	if n, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("%s: %w", e.src, err)
	} else if n != h.Size {
		return fmt.Errorf("%s changed while it was read", e.src)
	}
	return nil
}

// ignore holds the ignore files' patterns, matched with Docker's own matcher
// (github.com/moby/patternmatcher, which compiles each pattern to a regular
// expression, so a pattern of many "**" takes linear time): the last pattern that
// matches a path or one of its parent directories decides, and a leading "!"
// keeps what an earlier one left out.
type ignore struct {
	patterns []string
	pm       *patternmatcher.PatternMatcher
}

// readIgnore reads dir's ignore files. Each must be a plain file: one that is a
// link could be a name for something outside the source.
func readIgnore(dir string) (*ignore, error) {
	ign := &ignore{}
	for _, name := range IgnoreFiles {
		p := filepath.Join(dir, name)
		st, err := os.Lstat(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !st.Mode().IsRegular() {
			return nil, &source.UnsafeError{Path: name, Reason: "not a regular file"}
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if err := ign.add(string(data)); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return ign, nil
}

func (ig *ignore) add(text string) error {
	patterns, err := ignorefile.ReadAll(strings.NewReader(text))
	if err != nil {
		return err
	}
	ig.patterns = append(ig.patterns, patterns...)
	pm, err := patternmatcher.New(ig.patterns)
	if err != nil {
		return fmt.Errorf("a pattern does not parse: %w", err)
	}
	ig.pm = pm
	return nil
}

// excludes reports whether rel (a slash path) is left out.
func (ig *ignore) excludes(rel string) bool {
	if ig == nil || ig.pm == nil {
		return false
	}
	out, err := ig.pm.MatchesOrParentMatches(filepath.FromSlash(rel))
	return err == nil && out
}

// mayInclude reports whether a "!" pattern could keep something inside the excluded
// directory rel, so the walk must look inside it (as Docker does: any exclusion does).
func (ig *ignore) mayInclude(string) bool {
	return ig != nil && ig.pm != nil && ig.pm.Exclusions()
}

// skip is VerifyDir's view of the ignore files: what the build leaves out.
func (ig *ignore) skip(rel string, isDir bool) bool {
	if !ig.excludes(rel) {
		return false
	}
	return !isDir || !ig.mayInclude(rel)
}
